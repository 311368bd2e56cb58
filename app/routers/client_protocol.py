"""The client websocket's messages, in the PlaceOS / ACA Engine shape (DESIGN §4).

Pure: parsing requests and building replies and pushes, no sockets. The shapes are
those the ``@placeos/ts-client`` library sends and reads, so existing front ends
carry over: requests address a module by system, name and index (``debug`` and
``ignore`` also by module id in ``mod``), error replies carry the PlaceOS error codes,
debug pushes name the module and its driver class. Requests are checked as strictly as
REST bodies: an unknown field or a wrongly typed value is answered with an error
naming it, rather than half understood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import EngineError, UnknownModule, UnknownSystem
from app.services.validation import describe_errors

RequestId = int | str | None
Message = dict[str, Any]

#: The text frame front ends send to keep the connection alive, and its answer.
PING, PONG = "ping", "pong"


class ErrorCode(IntEnum):
    """The ``code`` of an error reply: PlaceOS's ``PlaceErrorCodes``."""

    PARSE_ERROR = 0
    BAD_REQUEST = 1
    ACCESS_DENIED = 2
    REQUEST_FAILED = 3
    UNKNOWN_COMMAND = 4
    SYSTEM_NOT_FOUND = 5
    MODULE_NOT_FOUND = 6
    UNEXPECTED_FAILURE = 7


def code_for(error: EngineError) -> ErrorCode:
    """The code of an engine error raised while carrying out a request.

    Any failure of a well-formed request other than a missing system or module, a
    bad argument or a refusal is ``REQUEST_FAILED``, with the engine's message
    saying why (an unknown method, the driver raised, no answer in time…).
    """
    if isinstance(error, UnknownSystem):
        return ErrorCode.SYSTEM_NOT_FOUND
    if isinstance(error, UnknownModule):
        return ErrorCode.MODULE_NOT_FOUND
    if error.status in (400, 422):
        return ErrorCode.BAD_REQUEST
    if error.status in (401, 403):
        return ErrorCode.ACCESS_DENIED
    return ErrorCode.REQUEST_FAILED


class BadRequest(Exception):
    """A frame that is no valid request; answered with an error, the socket stays open."""

    def __init__(self, request_id: RequestId, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.code = code
        self.message = message

    def reply(self) -> Message:
        return error(self.request_id, self.code, self.message)


@dataclass(frozen=True, slots=True)
class BindingKey:
    """One status variable of one module of a system, as a client binds to it."""

    sys: str
    mod: str
    index: int
    name: str

    def meta(self) -> dict[str, Any]:
        return {"sys": self.sys, "mod": self.mod, "index": self.index, "name": self.name}


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """The module a ``debug`` or ``ignore`` is about: module ``mod_index`` of ``sys``, or,
    without a system, the module whose id is ``mod``."""

    sys: str | None
    mod: str
    index: int

    def meta(self) -> dict[str, Any]:
        return {"sys": self.sys, "mod": self.mod, "index": self.index}


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


class _WatchRequest(_Request):
    """Addressed like ``bind`` (``name`` is accepted and ignored), by module id in
    ``mod`` without ``sys``, or by ``mod_id``."""

    sys: str | None = None
    mod: str | None = None
    index: int = Field(default=1, ge=1)
    name: str | None = None
    mod_id: str | None = None

    @model_validator(mode="after")
    def _names_a_module(self) -> _WatchRequest:
        if not (self.mod_id or self.mod):
            raise ValueError("mod: the module's name (with sys) or its id is required")
        return self

    @property
    def target(self) -> WatchTarget:
        if self.mod_id:
            return WatchTarget(None, self.mod_id, 1)
        assert self.mod is not None
        return WatchTarget(self.sys or None, self.mod, self.index)


class Debug(_WatchRequest):
    """Hear every log line of the module."""

    cmd: Literal["debug"]


class Ignore(_WatchRequest):
    cmd: Literal["ignore"]


ClientRequest = Bind | Unbind | Exec | Debug | Ignore

_COMMANDS: dict[str, type[ClientRequest]] = {
    "bind": Bind,
    "unbind": Unbind,
    "exec": Exec,
    "debug": Debug,
    "ignore": Ignore,
}


def parse_request(text: str) -> ClientRequest:
    """The request in ``text``; ``BadRequest`` (with the id when there is one) if invalid."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(None, ErrorCode.PARSE_ERROR, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(None, ErrorCode.PARSE_ERROR, "a request must be a JSON object")
    request_id = _request_id(data.get("id"))
    command = data.get("cmd")
    model = _COMMANDS.get(command) if isinstance(command, str) else None
    if model is None:
        expected = ", ".join(_COMMANDS)
        raise BadRequest(
            request_id,
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown cmd {command!r}: expected one of {expected}",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reasons = describe_errors(exc.errors(include_url=False))
        raise BadRequest(
            request_id,
            ErrorCode.BAD_REQUEST,
            "; ".join(f"{e['field']}: {e['reason']}" for e in reasons),
        ) from None


def _request_id(value: object) -> RequestId:
    """The id to echo in the reply: only an integer or a string is one."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def success(request_id: RequestId, meta: dict[str, Any]) -> Message:
    return {"id": request_id, "type": "success", "meta": meta}


def result(request_id: RequestId, value: Any, meta: dict[str, Any]) -> Message:
    return {"id": request_id, "type": "success", "value": value, "meta": meta}


def error(request_id: RequestId, code: ErrorCode, message: str) -> Message:
    return {"id": request_id, "type": "error", "code": int(code), "msg": message}


def notify(key: BindingKey, value: Any) -> Message:
    return {"type": "notify", "value": value, "meta": key.meta()}


def redirect(system_id: str, url: str) -> Message:
    """Control of a system's location moved: ``url`` is where its controller listens."""
    return {"type": "redirect", "url": url, "meta": {"sys": system_id}}


#: Python's level names as the library's ``PlaceLogLevel`` spells them.
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "critical": "fatal",
    "fatal": "fatal",
}


def debug_line(
    module_id: str, klass: str, level: str, message: str, meta: dict[str, Any]
) -> Message:
    """One log line of a watched module: levels ``debug|info|warn|error|fatal|trace``,
    and no traceback (its file paths are the server's business, not the client's)."""
    return {
        "type": "debug",
        "mod": module_id,
        "klass": klass,
        "level": _LEVELS.get(level.lower(), "trace"),
        "msg": without_traceback(message),
        "meta": meta,
    }


_TRACEBACK = "Traceback (most recent call last):"
_CHAINING = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def without_traceback(text: str) -> str:
    """``text`` with each traceback cut down to its last line (``KeyError: 'x'``)."""
    if _TRACEBACK not in text:
        return text
    kept: list[str] = []
    in_traceback = skipping = False
    for line in text.splitlines():
        if line == _TRACEBACK:
            in_traceback = skipping = True
        elif _is_traceback_detail(line, in_traceback=in_traceback, skipping=skipping):
            continue
        else:
            skipping = False
            kept.append(line)
    return "\n".join(kept)


def _is_traceback_detail(line: str, *, in_traceback: bool, skipping: bool) -> bool:
    """A frame, a blank line or a chaining sentence of a traceback (not its last line)."""
    if line in _CHAINING:
        return True
    if in_traceback and not line.strip():
        return True
    return skipping and line[0] in " \t"


def encode(message: Message) -> str:
    """JSON text; values JSON lacks (datetimes, bytes…) as the REST API shows them."""
    return json.dumps(message, default=_json_value)


def _json_value(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)
