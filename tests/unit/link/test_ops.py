"""The op table: each op declared once, called and served through its declaration."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.link.connection import LinkConnection
from app.link.ops import (
    EDGE_TO_MASTER,
    EXEC,
    MASTER_TO_EDGE,
    PING,
    REPLICA_CHANGES,
    STATUS,
    BadArgs,
    Empty,
    ExecArgs,
    NoArgs,
    op_table,
)
from app.runtime.reports import JsonValue

from .memory import memory_pair

WAIT = 2.0


def test_every_op_has_one_name_and_one_direction() -> None:
    names = [op.name for op in (*MASTER_TO_EDGE, *EDGE_TO_MASTER)]
    assert len(names) == len(set(names))
    assert "exec" in names
    assert "replica.changes" in names


def test_arguments_are_read_with_every_default_filled_in() -> None:
    args = EXEC.parse({"module_id": "mod-1", "method": "power", "newer_field": 1})
    assert args == {
        "module_id": "mod-1",
        "method": "power",
        "args": [],
        "kwargs": {},
        "timeout": None,
    }
    assert REPLICA_CHANGES.parse({}) == {"since": 0, "limit": None, "horizon": 0}
    # A key without a default stays absent: absence means something ("every module").
    assert STATUS.parse({}) == {}


def test_bad_arguments_say_which_field_and_why() -> None:
    with pytest.raises(BadArgs) as caught:
        EXEC.parse({"method": 3, "timeout": "soon"})
    assert str(caught.value) == (
        "bad arguments for 'exec': module_id: Field required; "
        "method: Input should be a valid string; "
        "timeout: Input should be a valid number, unable to parse string as a number"
    )


async def _ping(args: NoArgs) -> Empty:
    return {}


def test_a_table_serves_every_op_of_its_direction_once() -> None:
    assert op_table((PING,), PING.serve(_ping)).keys() == {"ping"}
    with pytest.raises(ValueError, match=r"missing \['ping'\]"):
        op_table((PING,))
    with pytest.raises(ValueError, match=r"extra \['ping'\]"):
        op_table((), PING.serve(_ping))
    with pytest.raises(ValueError, match=r"twice \['ping'\]"):
        op_table((PING,), PING.serve(_ping), PING.serve(_ping))


async def test_a_call_sends_its_arguments_as_given_and_returns_the_result() -> None:
    """The frame is the one a hand-written request sent: the declaration adds nothing."""
    calls: list[ExecArgs] = []

    async def exec_(args: ExecArgs) -> JsonValue:
        calls.append(args)
        return {"echo": args["args"][0]}

    master_end, edge_end = memory_pair()
    master = LinkConnection(master_end, handlers={}, name="edge 'edge-1'")
    edge = LinkConnection(
        edge_end, handlers=op_table((EXEC,), EXEC.serve(exec_)), name="master", max_size=1 << 20
    )
    runs = [asyncio.create_task(link.run()) for link in (master, edge)]
    try:
        args: ExecArgs = {
            "module_id": "mod-1",
            "method": "echo",
            "args": ["hi"],
            "kwargs": {},
            "timeout": 5.0,
        }
        assert await EXEC.call(master, args, timeout=WAIT) == {"echo": "hi"}
        assert calls == [args]
    finally:
        await master.close()
        await asyncio.wait_for(asyncio.gather(*runs), WAIT)


async def test_the_request_frame_is_unchanged() -> None:
    link_end, raw = memory_pair()
    link = LinkConnection(link_end, handlers={}, name="edge 'edge-1'")
    run = asyncio.create_task(link.run())
    try:
        call = asyncio.create_task(STATUS.call(link, {}, timeout=WAIT))
        frame = await asyncio.wait_for(raw.recv(), WAIT)
        assert frame == '{"type":"request","id":1,"op":"status","args":{}}'
        answer = {"type": "response", "id": 1, "ok": True, "result": {}}
        await raw.send(json.dumps(answer))
        assert await call == {}
    finally:
        await link.close()
        await asyncio.wait_for(run, WAIT)
