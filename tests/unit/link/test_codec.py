from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from app.link.codec import FrameError, decode, encode
from app.link.messages import Event, Request, Response

MAX = 1024


def test_encode_is_compact_json() -> None:
    assert encode(Request(id=7, op="status", args={"a": 1})) == (
        '{"type":"request","id":7,"op":"status","args":{"a":1}}'
    )


@pytest.mark.parametrize(
    "frame",
    [Request(id=1, op="exec", args={"x": [1, 2]}), Response.success(1, "ü"), Event(event="e", n=1)],
)
def test_decode_reverses_encode_from_text_and_bytes(frame: Request | Response | Event) -> None:
    text = encode(frame)

    assert decode(text, max_size=MAX) == frame
    assert decode(text.encode(), max_size=MAX) == frame


@pytest.mark.parametrize(
    ("data", "code", "request_id"),
    [
        ("{not json", "bad_json", None),
        (b"\xff\xfe", "bad_json", None),
        ("", "bad_json", None),
        ('{"type":"request","id":9', "bad_json", None),
        ("[1, 2]", "bad_frame", None),
        ('"request"', "bad_frame", None),
        ('{"id":3,"op":"x"}', "bad_frame", None),
        ('{"type":"nonsense","id":3}', "bad_frame", None),
        ('{"type":"request","id":3,"op":5,"args":{}}', "bad_frame", 3),
        ('{"type":"request","id":4,"op":"x","args":[]}', "bad_frame", 4),
        ('{"type":"request","id":"5","op":"x"}', "bad_frame", None),
        ('{"type":"request","id":true,"op":"x"}', "bad_frame", None),
        ('{"type":"response","id":6,"ok":false}', "bad_frame", None),
    ],
)
def test_decode_classifies_errors_and_recovers_request_ids(
    data: str | bytes, code: str, request_id: int | None
) -> None:
    with pytest.raises(FrameError) as caught:
        decode(data, max_size=MAX)

    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert caught.value.message


def test_bad_frame_message_names_the_offending_field() -> None:
    with pytest.raises(FrameError) as caught:
        decode('{"type":"request","id":3,"op":5}', max_size=MAX)

    assert "request.op" in caught.value.message


def test_bad_frame_message_stays_short_when_many_fields_are_wrong() -> None:
    with pytest.raises(FrameError) as caught:
        decode('{"type":"hello"}', max_size=MAX)

    assert caught.value.message.endswith("and 3 more")


def _padded_request(size: int, filler: str) -> str:
    empty = encode(Request(id=1, op="x", args={"p": ""}))
    padding = filler * ((size - len(empty.encode())) // len(filler.encode()))
    return encode(Request(id=1, op="x", args={"p": padding}))


@pytest.mark.parametrize("filler", ["a", "é", "€"])
def test_size_limit_counts_utf8_bytes(filler: str) -> None:
    at_limit = _padded_request(MAX, filler)
    assert len(at_limit.encode()) <= MAX
    decode(at_limit, max_size=len(at_limit.encode()))

    with pytest.raises(FrameError) as caught:
        decode(at_limit, max_size=len(at_limit.encode()) - 1)

    assert caught.value.code == "too_large"


def test_oversize_bytes_are_rejected_before_parsing() -> None:
    with pytest.raises(FrameError) as caught:
        decode(b"{" * (MAX + 1), max_size=MAX)

    assert caught.value.code == "too_large"


class _Model(BaseModel):
    at: datetime


@pytest.mark.parametrize(
    "result",
    [
        {"power": True, "input": "hdmi1", "volume": 42, "ratio": 0.1, "none": None},
        "ü €",
        2**70,
        {1: "int key"},
        {"nan": math.nan, "inf": -math.inf},
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        _Model(at=datetime(2026, 1, 2, tzinfo=UTC)),
        (1, 2),
        {"set": {1}},
        b"bytes",
    ],
)
def test_encode_writes_what_pydantic_writes(result: Any) -> None:
    for frame in (
        Response.success(3, result),
        Request(id=4, op="exec", args={"x": result}),
        Event(event="status", value=result),
    ):
        assert encode(frame) == frame.model_dump_json()


def test_encode_writes_failures_and_refuses_what_is_not_json() -> None:
    failure = Response.failure(5, "bad_args", "missing argument 'x'")
    assert encode(failure) == failure.model_dump_json()

    with pytest.raises(PydanticSerializationError):
        encode(Response.success(6, object()))
