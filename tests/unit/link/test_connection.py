from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from typing_extensions import TypedDict

from app.errors import ContentTooLarge, NotFound
from app.link.codec import FrameError, encode
from app.link.codes import CloseCode
from app.link.connection import LinkConnection
from app.link.messages import Challenge, Event, Hello, Request
from app.link.ops import Handler, Op
from app.link.pending import LinkClosed, LinkRequestError, LinkTimeout
from app.link.transports import TransportClosed, receive_frame
from tests.support.wait import wait_until

from .memory import MemoryTransport, memory_pair

EDGE = "edge 'edge-1'"
WAIT = 2.0


def connect(
    edge_handlers: dict[str, Handler] | None = None,
    *,
    on_event: Callable[[Event], Any] | None = None,
    **options: Any,
) -> tuple[LinkConnection, LinkConnection]:
    """A master-side and an edge-side link joined in memory; the edge serves the handlers."""
    master_end, edge_end = memory_pair()
    master = LinkConnection(master_end, handlers={}, on_event=on_event, name=EDGE, **options)
    edge = LinkConnection(edge_end, handlers=edge_handlers or {}, name="master", **options)
    return master, edge


@asynccontextmanager
async def serving(*links: LinkConnection) -> AsyncIterator[list[asyncio.Task[None]]]:
    runs = [asyncio.create_task(link.run()) for link in links]
    try:
        yield runs
    finally:
        for link in links:
            await link.close()
        await asyncio.wait_for(asyncio.gather(*runs), WAIT)


async def test_many_requests_in_flight_are_answered_out_of_order() -> None:
    gates: dict[int, asyncio.Future[None]] = {}
    finished: list[int] = []

    async def square(args: dict[str, Any]) -> dict[str, int]:
        n = args["n"]
        gates[n] = asyncio.get_running_loop().create_future()
        await gates[n]
        finished.append(n)
        return {"n": n, "square": n * n}

    master, edge = connect({"square": square})
    async with serving(master, edge):
        calls = [asyncio.create_task(master.request("square", {"n": n})) for n in range(200)]
        await wait_until(lambda: len(gates) == 200)
        for n in reversed(range(200)):
            gates[n].set_result(None)
        results = await asyncio.wait_for(asyncio.gather(*calls), WAIT)

    assert results == [{"n": n, "square": n * n} for n in range(200)]
    assert finished == list(reversed(range(200)))


@pytest.mark.parametrize("when", ["after waiting", "at once", "raising"])
async def test_a_handler_cancelling_its_own_task_leaves_the_link_reading(when: str) -> None:
    """As a module's deadline does: it cancels the task the call runs in."""

    async def cancel_own_task(args: dict[str, Any]) -> None:
        current = asyncio.current_task()
        assert current is not None
        if when == "after waiting":
            await asyncio.sleep(0)
        if when == "raising":
            raise asyncio.CancelledError
        current.cancel()
        if when == "after waiting":
            await asyncio.sleep(0)

    async def echo(args: dict[str, Any]) -> dict[str, Any]:
        return args

    master, edge = connect({"cancel": cancel_own_task, "echo": echo})
    async with serving(master, edge):
        unanswered = asyncio.create_task(master.request("cancel", timeout=WAIT))
        answered = [await master.request("echo", {"n": n}) for n in (1, 2)]
        assert not edge.closed
        unanswered.cancel()

    assert answered == [{"n": 1}, {"n": 2}]


async def test_requests_flow_both_ways_on_one_link() -> None:
    async def edge_status(args: dict[str, Any]) -> str:
        return "edge ok"

    async def master_status(args: dict[str, Any]) -> str:
        return "master ok"

    master_end, edge_end = memory_pair()
    master = LinkConnection(master_end, handlers={"status": master_status}, name=EDGE)
    edge = LinkConnection(edge_end, handlers={"status": edge_status}, name="master")
    async with serving(master, edge):
        assert await master.request("status") == "edge ok"
        assert await edge.request("status") == "master ok"


class PowerArgs(TypedDict):
    on: bool


POWER: Op[PowerArgs, bool] = Op("power", PowerArgs)


async def power(args: PowerArgs) -> bool:
    return args["on"]


async def takes_no_args(args: dict[str, Any]) -> None:
    (lambda: None)(**args)


async def raises_not_found(args: dict[str, Any]) -> None:
    raise NotFound("no module 'Display_9'")


async def raises_a_bug(args: dict[str, Any]) -> None:
    raise ZeroDivisionError("oops")


async def needs_an_argument(args: dict[str, Any]) -> None:
    args["module_id"]


async def returns_no_json(args: dict[str, Any]) -> object:
    return object()


async def passes_on_a_peer_error(args: dict[str, Any]) -> None:
    raise LinkRequestError("Conflict", "the edge said no")


@pytest.mark.parametrize(
    ("op", "code", "message_part"),
    [
        ("power", "bad_args", "on"),
        ("no_args", "internal", "TypeError"),
        ("find", "NotFound", "no module 'Display_9'"),
        ("buggy", "internal", "ZeroDivisionError: oops"),
        ("needy", "internal", "KeyError: 'module_id'"),
        ("opaque", "bad_result", "not JSON"),
        ("relay", "Conflict", "the edge said no"),
        ("fly", "unknown_op", "unknown op 'fly'"),
    ],
)
async def test_handler_failures_become_error_responses(
    op: str, code: str, message_part: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only arguments failing the op's model are ``bad_args``; a bug in a handler is
    ``internal`` and logged with its traceback."""
    master, edge = connect(
        {
            "power": POWER.serve(power).handler,
            "no_args": takes_no_args,
            "find": raises_not_found,
            "buggy": raises_a_bug,
            "needy": needs_an_argument,
            "opaque": returns_no_json,
            "relay": passes_on_a_peer_error,
        }
    )
    async with serving(master, edge):
        with pytest.raises(LinkRequestError) as caught:
            await master.request(op, {"on": "maybe"})
        assert await master.request("power", {"on": True}) is True

    assert caught.value.code == code
    assert message_part in caught.value.detail
    tracebacks = [r for r in caplog.records if r.exc_info and f"op {op!r}" in r.getMessage()]
    assert bool(tracebacks) == (code == "internal")


async def _next_frame(raw: MemoryTransport) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(raw.recv(), WAIT))
    return frame


async def test_malformed_frames_are_answered_and_the_link_survives() -> None:
    async def echo(args: dict[str, Any]) -> dict[str, Any]:
        return args

    link_end, raw = memory_pair()
    link = LinkConnection(link_end, handlers={"echo": echo}, name=EDGE)
    async with serving(link):
        await raw.send("{nope")
        bad_json = await _next_frame(raw)
        await raw.send('{"type":"request","id":7,"op":5,"args":{}}')
        bad_request = await _next_frame(raw)
        await raw.send(encode(Challenge(nonce="a" * 64)))
        unexpected = await _next_frame(raw)
        await raw.send(encode(Request(id=8, op="echo", args={"x": 1})))
        answered = await _next_frame(raw)

    assert (bad_json["type"], bad_json["event"], bad_json["code"]) == ("event", "error", "bad_json")
    assert bad_request["id"] == 7
    assert bad_request["ok"] is False
    assert bad_request["error"]["code"] == "bad_frame"
    assert (unexpected["event"], unexpected["code"]) == ("error", "unexpected_frame")
    assert answered == {"type": "response", "id": 8, "ok": True, "result": {"x": 1}}


async def test_oversize_frame_closes_the_link_with_1009() -> None:
    link_end, raw = memory_pair()
    link = LinkConnection(link_end, handlers={}, name=EDGE, max_size=64)
    run = asyncio.create_task(link.run())

    await raw.send(encode(Request(id=1, op="x", args={"pad": "x" * 64})))

    await asyncio.wait_for(run, WAIT)
    assert raw.close_code == 1009
    with pytest.raises(TransportClosed):
        await raw.recv()


async def test_a_dropped_link_fails_every_pending_request_at_once() -> None:
    arrived: list[int] = []
    cancelled: list[int] = []

    async def hang(args: dict[str, Any]) -> None:
        arrived.append(args["n"])
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(args["n"])
            raise

    master, edge = connect({"hang": hang})
    runs = [asyncio.create_task(master.run()), asyncio.create_task(edge.run())]
    # Deadlines far beyond WAIT: only the drop can end the calls within it.
    calls = [
        asyncio.create_task(master.request("hang", {"n": n}, timeout=60 * WAIT)) for n in range(100)
    ]
    await wait_until(lambda: len(arrived) == 100)

    await edge.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), WAIT)
    await asyncio.wait_for(asyncio.gather(*runs), WAIT)

    assert all(isinstance(outcome, LinkClosed) for outcome in outcomes)
    assert str(outcomes[0]) == "edge 'edge-1' is not connected"
    assert sorted(cancelled) == list(range(100))
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_stopping_run_fails_pending_requests_and_cancels_handlers() -> None:
    started = asyncio.Event()

    async def hang(args: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    master, edge = connect({"hang": hang})
    master_run, edge_run = asyncio.create_task(master.run()), asyncio.create_task(edge.run())
    call = asyncio.create_task(master.request("hang"))
    await asyncio.wait_for(started.wait(), WAIT)

    master_run.cancel()
    edge_run.cancel()

    with pytest.raises(LinkClosed):
        await asyncio.wait_for(call, WAIT)
    await asyncio.gather(master_run, edge_run, return_exceptions=True)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_request_without_answer_times_out_and_the_link_goes_on() -> None:
    async def hang(args: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async def status(args: dict[str, Any]) -> str:
        return "ok"

    master, edge = connect({"hang": hang, "status": status}, expiry_interval=0.005)
    async with serving(master, edge):
        with pytest.raises(LinkTimeout) as caught:
            await master.request("hang", timeout=0.05)
        assert await master.request("status") == "ok"

    assert str(caught.value) == "edge 'edge-1' did not answer 'hang' within 0.05 s"


async def test_requests_and_events_on_a_closed_link_fail_at_once() -> None:
    master, edge = connect()
    async with serving(master, edge):
        pass

    with pytest.raises(LinkClosed):
        await master.request("status")
    with pytest.raises(LinkClosed):
        await master.send_event("status")
    assert master.closed


async def test_events_arrive_in_order_with_their_fields() -> None:
    received: list[Event] = []

    async def collect(event: Event) -> None:
        received.append(event)

    master, edge = connect(on_event=collect)
    async with serving(master, edge):
        for value in range(50):
            await edge.send_event("status", module="Display_1", value=value)
        await wait_until(lambda: len(received) == 50)

    assert [event.fields for event in received] == [
        {"module": "Display_1", "value": value} for value in range(50)
    ]
    assert {event.event for event in received} == {"status"}


async def test_a_failing_event_handler_does_not_break_the_link() -> None:
    received: list[int] = []

    def collect_or_fail(event: Event) -> None:
        if event.fields["n"] == 0:
            raise ValueError("bad event")
        received.append(event.fields["n"])

    master, edge = connect(on_event=collect_or_fail)
    async with serving(master, edge):
        await edge.send_event("debug", n=0)
        await edge.send_event("debug", n=1)
        await wait_until(lambda: received == [1])


async def test_receive_frame_returns_the_expected_handshake_frame() -> None:
    first, second = memory_pair()
    challenge = Challenge(nonce="a" * 64)
    await first.send(encode(challenge))

    assert await receive_frame(second, Challenge) == challenge


async def test_receive_frame_refuses_an_unexpected_frame() -> None:
    first, second = memory_pair()
    await first.send(encode(Challenge(nonce="a" * 64)))

    with pytest.raises(FrameError) as caught:
        await receive_frame(second, Hello)

    assert caught.value.code == "unexpected_frame"


async def test_a_request_too_large_for_a_frame_is_refused_before_sending() -> None:
    master, edge = connect({"echo": lambda args: asyncio.sleep(0, args)}, max_size=256)
    async with serving(master, edge):
        with pytest.raises(ContentTooLarge, match="256-byte limit") as caught:
            await master.request("echo", {"pad": "x" * 300})
        assert caught.value.extensions["limit"] == 256
        assert await master.request("echo", {"small": 1}) == {"small": 1}
        assert not master.closed and not edge.closed


async def test_an_answer_too_large_for_a_frame_is_an_error_and_the_link_stays() -> None:
    async def big(args: dict[str, Any]) -> str:
        return "x" * 1000

    master, edge = connect({"big": big}, max_size=256)
    async with serving(master, edge):
        with pytest.raises(LinkRequestError, match="too large") as caught:
            await master.request("big")
        assert caught.value.code == "too_large"
        assert not master.closed and not edge.closed


async def test_an_event_too_large_for_a_frame_is_dropped_and_the_link_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[Event] = []
    master, edge = connect(on_event=events.append, max_size=256)
    async with serving(master, edge):
        await edge.send_event("debug", msg="x" * 1000)
        await edge.send_event("debug", msg="small")
        await wait_until(lambda: len(events) == 1)
        assert events[0].fields["msg"] == "small"
        assert not master.closed
    assert "not sent" in caplog.text


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b'{"type":"event","event":"x","v":"\xc3\x28"}', id="not UTF-8"),
        pytest.param("{\x00}", id="raw NUL byte"),
        pytest.param('{"type":"event","event":"x\\u0000","v":"\\u0000"}', id="escaped NUL"),
        pytest.param('{"type":"event","event":"x","v":' + "[" * 5000 + "]" * 5000 + "}", id="deep"),
        pytest.param('{"type":"request","id":9,"op":"' + "o" * 100_000 + '","args":{}}', id="long"),
        pytest.param(b"\xff\xfe\x00\x01", id="binary garbage"),
    ],
)
async def test_hostile_frames_never_break_the_link(frame: str | bytes) -> None:
    async def echo(args: dict[str, Any]) -> dict[str, Any]:
        return args

    link_end, raw = memory_pair()
    link = LinkConnection(link_end, handlers={"echo": echo}, name=EDGE)
    async with serving(link):
        await raw.send(frame)  # type: ignore[arg-type]
        await raw.send(encode(Request(id=8, op="echo", args={"x": 1})))
        while (answer := await _next_frame(raw)).get("id") != 8:
            assert answer["type"] in ("event", "response"), answer
        assert answer == {"type": "response", "id": 8, "ok": True, "result": {"x": 1}}
        assert not link.closed


async def test_a_closed_link_says_with_which_close_code() -> None:
    async def never_answers(args: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    master, edge = connect({"hang": never_answers})
    async with serving(master, edge):
        waiting = asyncio.create_task(master.request("hang", timeout=WAIT))
        await wait_until(lambda: len(master._pending) == 1)
        await master.close(CloseCode.REPLACED, "replaced by a newer connection")
        with pytest.raises(LinkClosed) as pending:
            await waiting
        with pytest.raises(LinkClosed) as later:
            await master.request("status")
    assert pending.value.close_code == later.value.close_code == CloseCode.REPLACED
