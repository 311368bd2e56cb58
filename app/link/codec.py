"""Frames to and from the JSON text of the wire.

The frames that carry payloads (requests, responses, events) are written by ``orjson``
from plain values, no model built: measured side by side (bench/README.md §8), 1.4 to
3 times faster than ``model_dump_json`` for a small frame and 5.5 times for a 240 KiB
replica batch, the same text byte for byte. What orjson would write differently (datetimes,
subclasses, models inside a result, integers beyond 64 bits) makes it raise, and
pydantic writes that frame, or says why it cannot.

Reading has two ways. `decode` validates the raw text in one pass with the precompiled
``TypeAdapter`` (``validate_json``), building a model. `read`, the connection's way, first
tries the frames that are nearly all the traffic, a request and a successful response:
``msgspec`` parses the text (it keeps integers beyond 64 bits exact, where orjson reads
them as floats) and the few envelope fields are checked by hand against the models'
strict rules, into a `Call` or a `Reply` with no model built (bench/README.md §8). Anything
else, or anything the check is not sure of, takes the `decode` way, so an unusual or bad
frame gets the same frame or the same error as before. The text is parsed a second time
only for a rejected frame, to recover the request id the error response must carry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeAlias

import msgspec
import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.link.messages import FRAME_ADAPTER, ErrorBody, Event, Frame, Request, Response

DEFAULT_MAX_SIZE = 1 << 20
"""The link's frame size limit in bytes (1 MiB, DESIGN §6)."""


_WIRE_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""What orjson would write differently from pydantic goes back to pydantic (it raises)."""


class FrameError(Exception):
    """A frame we cannot accept.

    ``request_id`` is set when the frame claimed to be a request with an integer id, so
    the receiver can answer that request with an error response.
    """

    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode(frame: Frame) -> str:
    """The frame as compact JSON text.

    Raises ``PydanticSerializationError`` when a payload is not JSON-able.
    """
    if isinstance(frame, Response):
        if frame.error is None:
            return encode_result(frame.id, frame.result)
        return encode_failure(frame.id, frame.error.code, frame.error.message)
    if isinstance(frame, Request):
        return encode_request(frame.id, frame.op, frame.args)
    if isinstance(frame, Event):
        return encode_event(frame.event, frame.fields)
    return frame.model_dump_json()


def encode_request(request_id: int, op: str, args: Mapping[str, Any]) -> str:
    """A request frame's text, without building its model first (the hot path's way)."""
    wire = {"type": "request", "id": request_id, "op": op, "args": args}
    return _dumps(wire) or Request(id=request_id, op=op, args=dict(args)).model_dump_json()


def encode_result(request_id: int, result: object) -> str:
    """A successful response's text; raises ``PydanticSerializationError`` (not JSON)."""
    wire = {"type": "response", "id": request_id, "ok": True, "result": result}
    return _dumps(wire) or Response.success(request_id, result).model_dump_json()


Encoded: TypeAlias = orjson.Fragment
"""A result that is JSON text already (`preencoded`)."""


def preencoded(text: str | bytes) -> Encoded:
    """A result that is JSON text already: `encode_result` writes it into the frame as is.

    For a result many frames carry (a replica batch read by many edges at once), so it
    is encoded once. The text must be valid JSON; nothing checks it again.
    """
    return orjson.Fragment(text)


def encode_failure(request_id: int, code: str, message: str) -> str:
    error = {"code": code, "message": message}
    wire = {"type": "response", "id": request_id, "ok": False, "error": error}
    return _dumps(wire) or Response.failure(request_id, code, message).model_dump_json()


def encode_event(event: str, fields: Mapping[str, Any]) -> str:
    """An event's text; a field named ``type`` or ``event`` is refused by the model."""
    if "type" in fields or "event" in fields:
        return Event(event=event, **fields).model_dump_json()
    return _dumps({"type": "event", "event": event, **fields}) or (
        Event(event=event, **fields).model_dump_json()
    )


def _dumps(wire: dict[str, Any]) -> str | None:
    """orjson's text, or None for what it would write differently from pydantic."""
    try:
        return orjson.dumps(wire, option=_WIRE_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return None


class Call(NamedTuple):
    """A request frame read by `read`: what a `Request` holds, without the model."""

    id: int
    op: str
    args: dict[str, Any]


class Reply(NamedTuple):
    """A successful response frame read by `read`: what a `Response` holds, without the model."""

    id: int
    result: object
    error: ErrorBody | None = None


_PARSER = msgspec.json.Decoder()

#: ``validate_json`` refuses JSON nested deeper than about 200 levels, msgspec reads
#: about 1,000: a text with more brackets than this could be one pydantic refuses, so it
#: goes the model's way. Every exec frame has a handful; a replica batch has thousands.
_FAST_BRACKETS = 150

_ABSENT = object()


def read(data: str | bytes, *, max_size: int) -> Call | Reply | Frame:
    """`decode`, with a fast way for requests and successful responses.

    Returns a `Call` or a `Reply` for those, the frame's model for anything else; raises
    `FrameError` as `decode` does, for the same frames with the same messages.
    """
    _check_size(data, max_size)
    if type(data) is str and data.count("{") + data.count("[") <= _FAST_BRACKETS:
        frame = _read_common(data)
        if frame is not None:
            return frame
    return _validate(data)


def _read_common(text: str) -> Call | Reply | None:
    """A request or a successful response, when the text is one the models would accept
    with exactly these values; None for anything else (the caller validates it)."""
    try:
        wire = _PARSER.decode(text)
    except msgspec.DecodeError:
        return None  # maybe JSON pydantic reads (NaN, 1e400): it decides
    if type(wire) is not dict:
        return None
    kind = wire.get("type")
    request_id = wire.get("id")
    if type(request_id) is not int:  # strict: not a bool, a float or a string
        return None
    if kind == "response":
        if wire.get("ok") is True and wire.get("error") is None:
            return Reply(request_id, wire.get("result"))
    elif kind == "request":
        op, args = wire.get("op"), wire.get("args", _ABSENT)
        if args is _ABSENT:
            args = {}
        if type(op) is str and type(args) is dict:
            return Call(request_id, op, args)
    return None


def decode(data: str | bytes, *, max_size: int) -> Frame:
    """Parse and validate one frame; raises `FrameError` (too_large, bad_json, bad_frame)."""
    _check_size(data, max_size)
    return _validate(data)


def _check_size(data: str | bytes, max_size: int) -> None:
    """Raises `FrameError` (too_large) for a frame over ``max_size`` bytes."""
    size = frame_size(data)
    if size > max_size:
        raise FrameError("too_large", f"frame of {size} bytes exceeds the {max_size}-byte limit")


def _validate(data: str | bytes) -> Frame:
    try:
        return FRAME_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            raise FrameError("bad_json", f"frame is not valid JSON: {errors[0]['msg']}") from None
        raise FrameError("bad_frame", _describe(errors), _request_id(data)) from None


def frame_size(data: str | bytes) -> int:
    """Bytes of a frame on the wire (UTF-8 for text)."""
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    return len(data.encode())


def _describe(errors: list[ErrorDetails], limit: int = 3) -> str:
    described = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'frame'}: {error['msg']}"
        for error in errors[:limit]
    )
    hidden = len(errors) - limit
    return f"{described}; and {hidden} more" if hidden > 0 else described


def _request_id(data: str | bytes) -> int | None:
    """The id of a rejected request frame, when it has a usable one."""
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("type") != "request":
        return None
    request_id = parsed.get("id")
    return request_id if type(request_id) is int else None
