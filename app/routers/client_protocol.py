"""The client websocket's messages, in the ACA Engine's shape (DESIGN §4).

Pure: parsing requests and building replies and pushes, no sockets. Requests are
checked as strictly as REST bodies: an unknown field or a wrongly typed value is
answered with an error naming it, rather than half understood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.services.validation import describe_errors

RequestId = int | str | None
Message = dict[str, Any]

#: The text frame some front ends send to keep the connection alive, and its answer.
PING, PONG = "ping", "pong"

#: The ``code`` of an error about the request itself (not JSON, unknown ``cmd``…).
BAD_REQUEST = 400


@dataclass(frozen=True, slots=True)
class BindingKey:
    """One status variable of one module of a system, as a client binds to it."""

    sys: str
    mod: str
    index: int
    name: str

    def meta(self) -> dict[str, Any]:
        return {"sys": self.sys, "mod": self.mod, "index": self.index, "name": self.name}


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: int | str | None = None


class _StatusRequest(_Request):
    sys: str = Field(min_length=1)
    mod: str = Field(min_length=1)
    index: int = Field(default=1, ge=1)
    name: str = Field(min_length=1)

    @property
    def key(self) -> BindingKey:
        return BindingKey(self.sys, self.mod, self.index, self.name)


class Bind(_StatusRequest):
    """Hear status variable ``name`` now and at every change."""

    cmd: Literal["bind"]


class Unbind(_StatusRequest):
    cmd: Literal["unbind"]


class Exec(_StatusRequest):
    """Run method ``name`` of the module with ``args`` (and ``kwargs``)."""

    cmd: Literal["exec"]
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class Debug(_Request):
    """Hear every log line of module ``mod_id``."""

    cmd: Literal["debug"]
    mod_id: str = Field(min_length=1)


class Ignore(_Request):
    cmd: Literal["ignore"]
    mod_id: str = Field(min_length=1)


ClientRequest = Bind | Unbind | Exec | Debug | Ignore

_COMMANDS: dict[str, type[ClientRequest]] = {
    "bind": Bind,
    "unbind": Unbind,
    "exec": Exec,
    "debug": Debug,
    "ignore": Ignore,
}


class BadRequest(Exception):
    """A frame that is no valid request; answered with an error, the socket stays open."""

    def __init__(self, request_id: RequestId, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.message = message

    def reply(self) -> Message:
        return error(self.request_id, BAD_REQUEST, self.message)


def parse_request(text: str) -> ClientRequest:
    """The request in ``text``; ``BadRequest`` (with the id when there is one) if invalid."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(None, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(None, "a request must be a JSON object")
    request_id = _request_id(data.get("id"))
    command = data.get("cmd")
    model = _COMMANDS.get(command) if isinstance(command, str) else None
    if model is None:
        expected = ", ".join(_COMMANDS)
        raise BadRequest(request_id, f"unknown cmd {command!r}: expected one of {expected}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reasons = describe_errors(exc.errors(include_url=False))
        raise BadRequest(
            request_id, "; ".join(f"{e['field']}: {e['reason']}" for e in reasons)
        ) from None


def _request_id(value: object) -> RequestId:
    """The id to echo in the reply: only an integer or a string is one."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def success(request_id: RequestId) -> Message:
    return {"id": request_id, "type": "success"}


def result(request_id: RequestId, value: Any) -> Message:
    return {"id": request_id, "type": "success", "value": value}


def error(request_id: RequestId, code: int, message: str) -> Message:
    return {"id": request_id, "type": "error", "code": code, "msg": message}


def notify(key: BindingKey, value: Any) -> Message:
    return {"type": "notify", "value": value, "meta": key.meta()}


def redirect(system_id: str, url: str) -> Message:
    """Control of a system's location moved: ``url`` is where its controller listens."""
    return {"type": "redirect", "url": url, "meta": {"sys": system_id}}


def debug_line(module_id: str, level: str, message: str) -> Message:
    return {"type": "debug", "mod_id": module_id, "level": level, "msg": message}


def encode(message: Message) -> str:
    """JSON text; values JSON lacks (datetimes, bytes…) as the REST API shows them."""
    return json.dumps(message, default=_json_value)


def _json_value(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)
