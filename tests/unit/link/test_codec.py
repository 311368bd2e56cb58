from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from app.link.codec import Call, FrameError, Reply, decode, encode, read
from app.link.messages import Event, Request, Response
from tests.support.garbage import json_values, link_frames

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


# --- the fast way of reading requests and responses ---------------------------------------


def _same(left: Any, right: Any) -> bool:
    """Equal with the same types all the way down (``1 == 1.0 == True`` in Python)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


def _read_as_decode_does(data: str | bytes) -> None:
    """`read` gives what `decode` gives, value for value, or the very same error."""
    try:
        expected: Any = decode(data, max_size=1 << 20)
    except FrameError as exc:
        expected = (exc.code, exc.message, exc.request_id)
    try:
        frame: Any = read(data, max_size=1 << 20)
    except FrameError as exc:
        frame = (exc.code, exc.message, exc.request_id)
    if isinstance(expected, tuple):
        assert frame == expected
        return
    if isinstance(frame, Call):
        assert isinstance(expected, Request)
        assert (frame.id, frame.op) == (expected.id, expected.op)
        assert _same(frame.args, expected.args)
    elif isinstance(frame, Reply):
        assert isinstance(expected, Response)
        assert (frame.id, frame.error, expected.ok) == (expected.id, expected.error, True)
        assert _same(frame.result, expected.result)
    else:
        assert type(frame) is type(expected)
        assert _same(frame.model_dump(), expected.model_dump())


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"request","id":1,"op":"exec","args":{"x":[1,2.5,"ü",null,true]}}',
        '{"type":"request","id":1,"op":"exec"}',
        '{"type":"request","id":1,"op":"exec","args":null}',
        '{"type":"request","id":1,"op":"exec","args":[]}',
        '{"type":"request","id":1.0,"op":"exec","args":{}}',
        '{"type":"request","id":true,"op":"exec","args":{}}',
        '{"type":"request","id":-5,"op":"","args":{},"extra":1}',
        '{"type":"request","id":1,"op":null,"args":{}}',
        '{"type":"response","id":2,"ok":true,"result":{"power":true}}',
        '{"type":"response","id":2,"ok":true}',
        '{"type":"response","id":2,"ok":true,"result":1,"error":null}',
        '{"type":"response","id":2,"ok":true,"error":{"code":"x","message":"y"}}',
        '{"type":"response","id":2,"ok":1,"result":1}',
        '{"type":"response","id":2,"ok":false,"error":{"code":"x","message":"y"}}',
        '{"type":"response","id":2,"ok":false}',
        '{"type":"response","ok":true,"result":1}',
        # integers beyond 64 bits stay exact; numbers only pydantic reads go its way
        '{"type":"response","id":3,"ok":true,"result":[18446744073709551616,-9223372036854775809]}',
        '{"type":"response","id":123456789012345678901234567890,"ok":true,"result":1}',
        '{"type":"response","id":3,"ok":true,"result":[1e400,-1e400]}',
        '{"type":"response","id":3,"ok":true,"result":[NaN,Infinity]}',
        '{"type":"response","id":3,"ok":true,"result":[-0,-0.0,1E2,1e-400,0.1,5e-324]}',
        '{"type":"response","id":3,"ok":true,"result":0.30000000000000004441}',
        '{"type":"response","id":3,"ok":true,"result":01}',
        '{"type":"response","id":3,"ok":true,"result":"\\ud83d\\ude00 \\u00fc \\u0000"}',
        '{"type":"response","id":3,"ok":true,"result":"\\ud800"}',
        '{"type":"response","id":3,"ok":true,"result":"a\tb"}',
        '{"type":"response","id":3,"ok":true,"result":1} ',
        ' \n{"type":"response","id":3,"ok":true,"result":1}',
        '{"type":"response","id":3,"ok":true,"result":1}x',
        '{"type":"response","id":3,"ok":true,"result":1,}',
        '\ufeff{"type":"response","id":3,"ok":true,"result":1}',
        # duplicate keys: the last one counts, for the envelope and the payload alike
        '{"type":"response","id":3,"ok":true,"result":{"a":1,"b":2,"a":3}}',
        '{"type":"response","id":3,"ok":true,"result":1,"type":"request"}',
        '{"type":"request","id":3,"op":"x","type":"response","ok":true}',
        '{"type":"response","id":3,"id":4,"ok":true,"result":1}',
        '{"type":"response","id":3,"ok":false,"ok":true,"result":1}',
        # nesting at and beyond what pydantic's parser takes
        '{"type":"response","id":3,"ok":true,"result":' + _nested(149) + "}",
        '{"type":"response","id":3,"ok":true,"result":' + _nested(199) + "}",
        '{"type":"response","id":3,"ok":true,"result":' + _nested(201) + "}",
        '{"type":"response","id":3,"ok":true,"result":' + _nested(600) + "}",
        '{"type":"event","event":"status","value":1}',
        '{"type":"challenge","nonce":"' + "a" * 64 + '"}',
        "[]",
        "null",
        "",
    ],
)
def test_read_gives_what_decode_gives(text: str) -> None:
    _read_as_decode_does(text)
    _read_as_decode_does(text.encode("utf-8", "surrogatepass"))


def test_read_takes_the_fast_way_for_requests_and_successful_responses() -> None:
    request = encode(Request(id=1, op="exec", args={"big": 2**70}))
    response = encode(Response.success(2, {"power": True}))

    assert read(request, max_size=MAX) == Call(1, "exec", {"big": 2**70})
    assert read(response, max_size=MAX) == Reply(2, {"power": True})
    assert isinstance(read(request.encode(), max_size=MAX), Request)  # binary: the model's way


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    frame=link_frames
    | json_values.map(
        lambda value: f'{{"type":"response","id":1,"ok":true,"result":{json.dumps(value)}}}'
    )
)
def test_read_gives_what_decode_gives_for_any_frame(frame: str | bytes) -> None:
    _read_as_decode_does(frame)
