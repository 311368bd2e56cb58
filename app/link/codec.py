"""Frames to and from the JSON text of the wire.

The frames that carry payloads (requests, responses, events) are written by ``orjson``
from plain values, no model built: measured side by side (bench/README.md §8), 1.4 to
3 times faster than ``model_dump_json`` for a small frame and 5.5 times for a 240 KiB
replica batch, the same text byte for byte. What orjson would write differently (datetimes,
subclasses, models inside a result, integers beyond 64 bits) makes it raise, and
pydantic writes that frame, or says why it cannot.

Reading validates the raw text in one pass (the precompiled ``TypeAdapter``'s
``validate_json``): ``orjson.loads`` and then validation is no faster for small frames,
and orjson reads integers beyond 64 bits as floats. The text is parsed a second time
only for a rejected frame, to recover the request id the error response must carry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.link.messages import FRAME_ADAPTER, Event, Frame, Request, Response

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


def encode_request(request_id: int, op: str, args: dict[str, Any]) -> str:
    """A request frame's text, without building its model first (the hot path's way)."""
    wire = {"type": "request", "id": request_id, "op": op, "args": args}
    return _dumps(wire) or Request(id=request_id, op=op, args=args).model_dump_json()


def encode_result(request_id: int, result: Any) -> str:
    """A successful response's text; raises ``PydanticSerializationError`` (not JSON)."""
    wire = {"type": "response", "id": request_id, "ok": True, "result": result}
    return _dumps(wire) or Response.success(request_id, result).model_dump_json()


def preencoded(text: str | bytes) -> Any:
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


def decode(data: str | bytes, *, max_size: int) -> Frame:
    """Parse and validate one frame; raises `FrameError` (too_large, bad_json, bad_frame)."""
    size = frame_size(data)
    if size > max_size:
        raise FrameError("too_large", f"frame of {size} bytes exceeds the {max_size}-byte limit")
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
