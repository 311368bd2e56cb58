from __future__ import annotations

import pytest

from app.runtime.transports import DelimiterFramer, FrameTooLong, TransportError


def test_returns_every_frame_a_chunk_completes() -> None:
    framer = DelimiterFramer()

    assert framer.feed(b"one\ntwo\nthree\n") == [b"one", b"two", b"three"]


def test_keeps_a_partial_frame_until_its_delimiter_arrives() -> None:
    framer = DelimiterFramer()

    assert framer.feed(b"pow") == []
    assert framer.feed(b"er on\nvol") == [b"power on"]
    assert framer.feed(b"ume 5\n") == [b"volume 5"]


def test_strips_carriage_returns_of_crlf_and_lfcr_endings() -> None:
    framer = DelimiterFramer()

    assert framer.feed(b"crlf\r\n\rlfcr\n") == [b"crlf", b"lfcr"]


def test_empty_frames_are_kept() -> None:
    assert DelimiterFramer().feed(b"\n\nx\n") == [b"", b"", b"x"]


def test_multi_byte_delimiter_split_across_chunks() -> None:
    framer = DelimiterFramer(delimiter=b"\r\n", strip=b"")

    assert framer.feed(b"a\r") == []
    assert framer.feed(b"\nb\r\n") == [b"a", b"b"]


def test_a_frame_of_exactly_max_length_is_accepted() -> None:
    framer = DelimiterFramer(delimiter=b"\r\n", max_length=4)

    assert framer.feed(b"abcd\r") == []
    assert framer.feed(b"\n") == [b"abcd"]


def test_an_over_long_partial_frame_is_discarded_up_to_its_delimiter() -> None:
    framer = DelimiterFramer(max_length=4)

    with pytest.raises(FrameTooLong) as raised:
        framer.feed(b"ok\nabcdef")

    assert raised.value.frames == [b"ok"]
    assert isinstance(raised.value, TransportError)
    assert framer.feed(b"ghij") == [], "the rest of the same frame is skipped quietly"
    assert framer.feed(b"kl\nnext\n") == [b"next"]


def test_an_over_long_complete_frame_keeps_the_frames_around_it() -> None:
    framer = DelimiterFramer(max_length=4)

    with pytest.raises(FrameTooLong) as raised:
        framer.feed(b"a\ntoo long\nb\n")

    assert raised.value.frames == [b"a", b"b"]
    assert framer.feed(b"c\n") == [b"c"]


def test_reset_drops_a_partial_frame() -> None:
    framer = DelimiterFramer()
    framer.feed(b"stale")

    framer.reset()

    assert framer.feed(b"fresh\n") == [b"fresh"]


def test_reset_ends_skipping_an_over_long_frame() -> None:
    framer = DelimiterFramer(max_length=2)
    with pytest.raises(FrameTooLong):
        framer.feed(b"long")

    framer.reset()

    assert framer.feed(b"ok\n") == [b"ok"]


@pytest.mark.parametrize("arguments", [{"delimiter": b""}, {"max_length": 0}])
def test_rejects_a_framing_that_cannot_work(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"delimiter|max_length"):
        DelimiterFramer(**arguments)  # type: ignore[arg-type]
