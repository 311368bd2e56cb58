from __future__ import annotations

import logging

import pytest

from app.runtime.driver import module_logger
from app.runtime.status import DebugStream, Status
from tests.unit.runtime.conftest import Changes


def test_a_new_value_notifies_every_subscriber() -> None:
    status, first, second = Status(), Changes(), Changes()
    status.subscribe(first)
    status.subscribe(second)

    status["power"] = True

    assert first.seen == second.seen == [("power", True)]
    assert status["power"] is True


def test_the_same_value_again_notifies_no_one() -> None:
    status, changes = Status(), Changes()
    status["input"] = "hdmi1"
    status.subscribe(changes)

    status["input"] = "hdmi1"
    status["input"] = "hdmi2"

    assert changes.seen == [("input", "hdmi2")]


def test_an_equal_value_of_another_type_is_a_change() -> None:
    status, changes = Status(), Changes()
    status["level"] = 1
    status.subscribe(changes)

    status["level"] = True

    assert changes.seen == [("level", True)]


def test_deleting_a_variable_notifies_none() -> None:
    status, changes = Status(), Changes()
    status["volume"] = 10
    status.subscribe(changes)

    del status["volume"]

    assert changes.seen == [("volume", None)]
    assert "volume" not in status


def test_an_unsubscribed_callback_hears_nothing_more() -> None:
    status, changes = Status(), Changes()
    unsubscribe = status.subscribe(changes)
    status["a"] = 1

    unsubscribe()
    unsubscribe()  # twice is harmless
    status["a"] = 2

    assert changes.seen == [("a", 1)]


def test_a_raising_subscriber_keeps_neither_the_others_nor_the_writer_from_going_on() -> None:
    status, changes = Status(), Changes()

    def broken(_name: str, _value: object) -> None:
        raise RuntimeError("listener bug")

    status.subscribe(broken)
    status.subscribe(changes)

    status["power"] = False

    assert changes.seen == [("power", False)]


def test_a_snapshot_is_a_copy() -> None:
    status = Status()
    status["a"] = 1

    snapshot = status.snapshot()
    status["a"] = 2

    assert snapshot == {"a": 1}


def test_every_logger_level_reaches_the_debug_stream_whatever_the_log_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream, lines = DebugStream(), Changes()
    stream.subscribe(lines)
    logger = module_logger("mod-1", stream)
    caplog.set_level(logging.INFO, logger="app.modules")

    logger.debug("polling %s", "input")
    logger.warning("slow reply: %d ms", 250)

    assert lines.seen == [("debug", "polling input"), ("warning", "slow reply: 250 ms")]
    assert [record.getMessage() for record in caplog.records] == ["[mod-1] slow reply: 250 ms"]


def test_an_exception_logged_to_the_stream_carries_its_traceback() -> None:
    stream, lines = DebugStream(), Changes()
    stream.subscribe(lines)
    logger = module_logger("mod-1", stream)

    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("decoding failed")

    ((level, message),) = lines.seen
    assert level == "error"
    assert message.startswith("decoding failed\nTraceback")
    assert message.endswith("ValueError: bad frame")
