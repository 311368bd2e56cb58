"""A request's answer: the result, or an error code that says whose fault it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import NotFound
from app.link.answers import answer
from app.link.codec import Call
from app.link.ops import DEBUG_UNSUBSCRIBE, PING, Empty, ModuleArgs, NoArgs, op_table


async def _pong(args: NoArgs) -> Empty:
    return {}


async def _missing(args: dict[str, Any]) -> None:
    raise NotFound("no module 'Display_9'")


async def _buggy(args: dict[str, Any]) -> None:
    raise ZeroDivisionError("oops")


async def _opaque(args: dict[str, Any]) -> object:
    return object()


HANDLERS = {
    **op_table((PING,), PING.serve(_pong)),
    "find": _missing,
    "buggy": _buggy,
    "opaque": _opaque,
}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (Call(1, "ping", {}), {"ok": True, "result": {}}),
        (Call(2, "fly", {}), {"ok": False, "code": "unknown_op"}),
        (Call(3, "find", {}), {"ok": False, "code": "NotFound"}),
        (Call(4, "buggy", {}), {"ok": False, "code": "internal"}),
        (Call(5, "opaque", {}), {"ok": False, "code": "bad_result"}),
    ],
)
async def test_every_request_gets_a_response(call: Call, expected: dict[str, Any]) -> None:
    frame = json.loads(await answer(HANDLERS, call, peer="master"))
    assert frame["type"] == "response"
    assert frame["id"] == call.id
    assert frame["ok"] is expected["ok"]
    if expected["ok"]:
        assert frame["result"] == expected["result"]
    else:
        assert frame["error"]["code"] == expected["code"]


async def test_arguments_failing_the_declaration_are_the_peers_fault() -> None:
    async def forget(args: ModuleArgs) -> Empty:
        return {}

    handlers = op_table((DEBUG_UNSUBSCRIBE,), DEBUG_UNSUBSCRIBE.serve(forget))
    refused = json.loads(await answer(handlers, Call(6, "debug.unsubscribe", {}), peer="master"))
    assert refused["error"] == {
        "code": "bad_args",
        "message": "bad arguments for 'debug.unsubscribe': module_id: Field required",
    }
    newer = Call(7, "debug.unsubscribe", {"module_id": "m", "newer": 1})
    assert json.loads(await answer(handlers, newer, peer="master"))["ok"] is True
