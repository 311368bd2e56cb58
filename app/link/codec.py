"""Frames to and from the JSON text of the wire.

Decoding validates the raw text in one pass (``TypeAdapter.validate_json``), about twice
as fast as ``json.loads`` followed by validation; the text is parsed a second time only
for a rejected frame, to recover the request id the error response must carry.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.link.messages import FRAME_ADAPTER, Frame

DEFAULT_MAX_SIZE = 1 << 20
"""The link's frame size limit in bytes (1 MiB, DESIGN §6)."""


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
    """The frame as compact JSON text."""
    return frame.model_dump_json()


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
