"""The client websocket's messages, without sockets: PlaceOS's shapes and error codes."""

from __future__ import annotations

import json
import logging

import pytest

from app.errors import (
    Conflict,
    DriverFailed,
    EngineError,
    Forbidden,
    GatewayTimeout,
    InvalidField,
    NotFound,
    UnknownModule,
    UnknownSystem,
)
from app.routers import client_protocol as protocol
from app.routers.client_protocol import BadRequest, Debug, ErrorCode, WatchTarget
from app.runtime.status import DebugStream, ModuleLogger


def test_the_codes_are_placeos_error_codes() -> None:
    assert [code.value for code in ErrorCode] == list(range(8))
    assert (ErrorCode.SYSTEM_NOT_FOUND.value, ErrorCode.MODULE_NOT_FOUND.value) == (5, 6)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UnknownSystem("no control system s"), ErrorCode.SYSTEM_NOT_FOUND),
        (UnknownModule("s has no module Tv_1"), ErrorCode.MODULE_NOT_FOUND),
        (InvalidField("args", "too many"), ErrorCode.BAD_REQUEST),
        (Forbidden("not an admin"), ErrorCode.ACCESS_DENIED),
        (NotFound("no method warp"), ErrorCode.REQUEST_FAILED),
        (DriverFailed("projector on fire"), ErrorCode.REQUEST_FAILED),
        (Conflict("not running"), ErrorCode.REQUEST_FAILED),
        (GatewayTimeout("no answer"), ErrorCode.REQUEST_FAILED),
    ],
)
def test_engine_errors_map_to_codes(error: EngineError, code: ErrorCode) -> None:
    assert protocol.code_for(error) == code


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", ErrorCode.PARSE_ERROR),
        ("[]", ErrorCode.PARSE_ERROR),
        ('{"id": 1, "cmd": "teleport"}', ErrorCode.UNKNOWN_COMMAND),
        ('{"id": 1, "cmd": "bind", "sys": "s"}', ErrorCode.BAD_REQUEST),
        ('{"id": 1, "cmd": "debug", "sys": "s", "index": 1}', ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_frames_are_answered_with_their_code(frame: str, code: ErrorCode) -> None:
    with pytest.raises(BadRequest) as bad:
        protocol.parse_request(frame)
    assert bad.value.reply()["code"] == code


@pytest.mark.parametrize(
    ("request_", "target"),
    [
        ({"sys": "s", "mod": "Echo", "index": 2, "name": ""}, WatchTarget("s", "Echo", 2)),
        ({"sys": "", "mod": "mod-1", "index": 1, "name": "x"}, WatchTarget(None, "mod-1", 1)),
        ({"mod": "mod-1"}, WatchTarget(None, "mod-1", 1)),
        ({"mod_id": "mod-1"}, WatchTarget(None, "mod-1", 1)),
    ],
)
def test_debug_is_addressed_like_bind_or_by_module_id(
    request_: dict[str, object], target: WatchTarget
) -> None:
    parsed = protocol.parse_request(json.dumps({"id": 7, "cmd": "debug", **request_}))
    assert isinstance(parsed, Debug) and parsed.target == target


def test_debug_lines_in_the_library_shape() -> None:
    meta = {"sys": "s", "mod": "Echo", "index": 1}
    levels = ["debug", "info", "warning", "error", "critical", "level 5"]
    lines = [protocol.debug_line("mod-1", "Echo", level, "hi", meta) for level in levels]
    assert [line["level"] for line in lines] == ["debug", "info", "warn", "error", "fatal", "trace"]
    assert lines[0] == {
        "type": "debug",
        "mod": "mod-1",
        "klass": "Echo",
        "level": "debug",
        "msg": "hi",
        "meta": meta,
    }


def test_a_traceback_never_reaches_the_client() -> None:
    stream = DebugStream()
    heard: list[str] = []
    stream.subscribe(lambda level, message: heard.append(message))
    logger = ModuleLogger(logging.getLogger("test.module"), stream, "mod-1")

    def fail() -> None:
        try:
            raise KeyError("lamp")
        except KeyError as exc:
            raise RuntimeError("projector on fire") from exc

    try:
        fail()
    except RuntimeError as exc:
        logger.error("send failed: %s", exc, exc_info=exc)
    line = protocol.debug_line("mod-1", "Echo", "error", heard[0], {})
    assert "File " in heard[0], "the server's own log keeps the traceback"
    assert (
        line["msg"]
        == "send failed: projector on fire\nKeyError: 'lamp'\nRuntimeError: projector on fire"
    )


def test_replies_carry_meta() -> None:
    key = protocol.BindingKey("s", "Echo", 1, "power")
    assert protocol.success(1, key.meta()) == {"id": 1, "type": "success", "meta": key.meta()}
    assert protocol.result(2, True, key.meta())["value"] is True
    assert protocol.error(3, ErrorCode.REQUEST_FAILED, "no") == {
        "id": 3,
        "type": "error",
        "code": 3,
        "msg": "no",
    }
