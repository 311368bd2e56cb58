"""The master's end of the control links, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect

from app.link import (
    Challenge,
    CloseCode,
    Control,
    EdgeHandshake,
    Hello,
    LinkConnection,
    LinkTimeout,
    TransportClosed,
    WebsocketsTransport,
    Welcome,
    encode,
    receive_frame,
)
from app.link.ops import Handler
from app.master.duplicates import Duplicate
from app.master.links import MISSED_PINGS, Admission, EdgeLinks, LinkTable, LoopStalls
from tests.support.wait import wait_until

EDGE = "edge-1"
SECRET = "edge-secret"
PING_S = 0.05
WAIT = 5.0
#: How long a duplicate's holder keeps its place after its link ends.
HOLD_S = 1.0


class Listener:
    """Records what the links report; ``admitting`` holds admissions while cleared."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.admitting = asyncio.Event()
        self.admitting.set()

    async def admit(self, hello: Hello) -> Admission:
        self.events.append("admit")
        await self.admitting.wait()
        return Admission(False, Control(controller="edge", epoch=1))

    async def link_up(self, edge_id: str, link: LinkConnection, hello: Hello) -> None:
        self.events.append("up")

    async def link_down(self, edge_id: str) -> None:
        self.events.append("down")

    async def duplicate_refused(self, edge_id: str, duplicate: Duplicate, *, first: bool) -> None:
        self.events.append("duplicate" if first else "duplicate again")


class UnknownOps(Mapping[str, Handler]):
    """An edge that knows no op at all; counts the requests it was sent."""

    def __init__(self) -> None:
        self.asked = 0

    def __getitem__(self, op: str) -> Handler:
        self.asked += 1
        raise KeyError(op)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Secrets:
    """One edge and its secret."""

    async def valid(self, edge_id: str) -> list[str]:
        return [SECRET] if edge_id == EDGE else []

    async def end_grace(self, edge_id: str, used: str) -> None:
        pass


async def no_event(edge_id: str, event: Any) -> None:
    pass


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
async def url(listener: Listener) -> AsyncIterator[str]:
    secrets = Secrets()
    links = EdgeLinks(
        secrets=secrets,
        table=LinkTable(secrets, duplicate_hold_s=HOLD_S),
        listener=listener,
        handlers=lambda edge_id: {},
        on_event=no_event,
        max_frame=1 << 20,
        request_timeout=WAIT,
        ping_interval=PING_S,
    )
    app = Starlette(routes=[WebSocketRoute("/api/edge/link", links.serve)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=WAIT, message="uvicorn to start")
    yield f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/api/edge/link"
    server.should_exit = True
    await asyncio.wait_for(serving, WAIT)


async def say_hello(
    transport: WebsocketsTransport, *, devices_loaded: bool, instance_id: str | None
) -> EdgeHandshake:
    """Answer the master's challenge with the edge's hello, as the process ``instance_id``."""
    handshake = EdgeHandshake(
        EDGE,
        SECRET,
        boot_time=0.0,
        devices_loaded=devices_loaded,
        replica_seq=0,
        commit=None,
        instance_id=instance_id,
    )
    challenge = await receive_frame(transport, Challenge)
    await transport.send(encode(handshake.receive_challenge(challenge)))
    return handshake


@asynccontextmanager
async def edge(
    url: str, handlers: Mapping[str, Handler] | None = None, *, instance_id: str | None = None
) -> AsyncIterator[ClientConnection]:
    """An authenticated edge; it answers requests only when given ``handlers``."""
    async with connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        handshake = await say_hello(transport, devices_loaded=True, instance_id=instance_id)
        handshake.receive_welcome(await receive_frame(transport, Welcome))
        await receive_frame(transport, Control)
        if handlers is None:
            yield websocket
            return
        link = LinkConnection(transport, handlers=handlers, name="master")
        serving = asyncio.create_task(link.run())
        try:
            yield websocket
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


async def pong(args: dict[str, Any]) -> dict[str, Any]:
    return {}


async def close_code(websocket: ClientConnection) -> int | None:
    """How the master closed the connection."""
    async with asyncio.timeout(WAIT):
        await websocket.wait_closed()
    return websocket.close_code


async def test_a_reconnecting_edge_replaces_its_link_without_going_down(
    url: str, listener: Listener
) -> None:
    async with edge(url, {"ping": pong}) as first:
        await wait_until(lambda: listener.events == ["admit", "up"], timeout=WAIT)
        async with edge(url, {"ping": pong}):
            assert await close_code(first) == CloseCode.REPLACED
            await wait_until(lambda: listener.events[-1] == "up", timeout=WAIT)
            assert listener.events == ["admit", "up", "admit", "up"]
    await wait_until(lambda: "down" in listener.events, timeout=WAIT)
    assert listener.events == ["admit", "up", "admit", "up", "down"]


async def duplicate_hello(url: str, instance_id: str) -> tuple[int | None, str]:
    """A second process's handshake; the close code and reason the master answered with."""
    async with connect(url) as websocket:
        await say_hello(
            WebsocketsTransport(websocket), devices_loaded=False, instance_id=instance_id
        )
        await websocket.wait_closed()
        return websocket.close_code, websocket.close_reason or ""


async def test_a_second_process_is_refused_while_the_first_holds_the_link(
    url: str, listener: Listener
) -> None:
    async with edge(url, {"ping": pong}, instance_id="first") as first:
        await wait_until(lambda: listener.events == ["admit", "up"], timeout=WAIT)
        for _ in range(5):
            code, reason = await duplicate_hello(url, "second")
            assert code == CloseCode.DUPLICATE
            assert reason.startswith("duplicate: ") and "instance first" in reason
        assert first.close_code is None, "the first keeps its link"
        assert listener.events == ["admit", "up", "duplicate"] + ["duplicate again"] * 4
        # The same process reconnecting still replaces its own link.
        async with edge(url, {"ping": pong}, instance_id="first"):
            assert await close_code(first) == CloseCode.REPLACED
    # Gone, the holder keeps its place a while (a blip must not let the other in)...
    await wait_until(lambda: "down" in listener.events, timeout=WAIT)
    assert (await duplicate_hello(url, "second"))[0] == CloseCode.DUPLICATE

    # ... and then another process gets in: a restarted edge has a new instance id.
    async def admitted() -> bool:
        try:
            async with edge(url, {"ping": pong}, instance_id="second"):
                return True
        except TransportClosed:
            return False

    await wait_until(admitted, timeout=WAIT, message="the second process let in")


async def test_an_edge_that_leaves_during_its_admission_goes_down(
    url: str, listener: Listener
) -> None:
    listener.admitting.clear()
    websocket = await connect(url)
    transport = WebsocketsTransport(websocket)
    handshake = EdgeHandshake(
        EDGE, SECRET, boot_time=0.0, devices_loaded=True, replica_seq=0, commit=None
    )
    challenge = await receive_frame(transport, Challenge)
    await transport.send(encode(handshake.receive_challenge(challenge)))
    await wait_until(lambda: listener.events == ["admit"], timeout=WAIT)

    await websocket.close()
    listener.admitting.set()

    await wait_until(lambda: "down" in listener.events, timeout=WAIT)
    assert listener.events == ["admit", "down"]


async def test_an_edge_that_stops_answering_loses_its_link(url: str, listener: Listener) -> None:
    async with edge(url) as silent:
        assert await close_code(silent) == CloseCode.UNRESPONSIVE
    await wait_until(lambda: "down" in listener.events, timeout=WAIT)
    assert listener.events == ["admit", "up", "down"]


async def test_any_answer_keeps_a_link_alive(url: str, listener: Listener) -> None:
    old_edge = UnknownOps()
    async with edge(url, old_edge) as websocket:
        await wait_until(lambda: old_edge.asked >= 5, timeout=WAIT, message="five pings")
        assert websocket.close_code is None
        assert listener.events == ["admit", "up"]


async def wrong_hello(url: str, edge_id: str = EDGE) -> int | None:
    """A hello with a wrong proof; returns the close code the master answered with."""
    async with connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        handshake = EdgeHandshake(
            edge_id, "guess", boot_time=0.0, devices_loaded=True, replica_seq=0, commit=None
        )
        challenge = await receive_frame(transport, Challenge)
        await transport.send(encode(handshake.receive_challenge(challenge)))
        await websocket.wait_closed()
        return websocket.close_code


async def test_a_flood_of_wrong_hellos_never_keeps_the_real_edge_out(
    url: str, listener: Listener
) -> None:
    for _ in range(20):  # far past the throttle's limit, from the edge's own address
        assert await wrong_hello(url) == CloseCode.AUTH_FAILED

    async with edge(url):
        await wait_until(lambda: "up" in listener.events, timeout=WAIT, message="the link up")


class StalledMaster:
    """A link whose first pings time out because the master's own loop stalled past
    their deadline (the answers sat unread); every later ping is answered."""

    def __init__(self, stalls: int) -> None:
        self.stalls = stalls
        self.pings = 0

    async def request(self, op: str, args: Any = None, *, timeout: float | None = None) -> Any:
        self.pings += 1
        if self.pings <= self.stalls:
            time.sleep(2 * (timeout or 0))  # noqa: ASYNC251
            raise LinkTimeout("no answer read in time")
        return {}


class FrozenEdge:
    """A link whose edge never answers."""

    async def request(self, op: str, args: Any = None, *, timeout: float | None = None) -> Any:
        await asyncio.sleep(timeout or 0)
        raise LinkTimeout("no answer")


def heartbeat_of(links: EdgeLinks, link: object) -> Coroutine[Any, Any, bool]:
    return links._heartbeat(cast(LinkConnection, link))


async def test_pings_the_master_was_too_busy_to_hear_do_not_count_against_the_edge() -> None:
    links = EdgeLinks(
        secrets=Secrets(),
        table=LinkTable(Secrets()),
        listener=Listener(),
        handlers=lambda edge_id: {},
        on_event=no_event,
        max_frame=1 << 20,
        request_timeout=WAIT,
        ping_interval=PING_S,
    )
    stalled = StalledMaster(stalls=3)
    beating = asyncio.create_task(heartbeat_of(links, stalled))
    await wait_until(lambda: stalled.pings > 10, timeout=WAIT, message="ten pings")
    assert not beating.done(), "an edge whose answers the master could not read was dropped"
    beating.cancel()
    started = time.monotonic()
    assert await asyncio.wait_for(heartbeat_of(links, FrozenEdge()), WAIT) is True
    silent = time.monotonic() - started
    assert MISSED_PINGS * PING_S <= silent < (MISSED_PINGS + 2) * PING_S + 0.5


async def test_loop_stalls_count_only_the_time_the_loop_was_late() -> None:
    stalls = LoopStalls(tick_s=0.01)
    async with stalls.watching():
        at, stalled = time.monotonic(), stalls.stalled()
        await asyncio.sleep(0.1)
        assert stalls.stalled() - stalled < 0.05
        time.sleep(0.3)  # noqa: ASYNC251
        assert stalls.stalled() - stalled >= 0.29, "a stall is counted while it lasts"
        await asyncio.sleep(0.05)
        assert stalls.stalled() - stalled >= 0.29
        assert 0.1 <= stalls.responsive_since(at, stalled) < 0.25
