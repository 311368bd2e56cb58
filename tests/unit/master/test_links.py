"""The master's end of the control links, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect

from app.link import (
    Challenge,
    Control,
    EdgeHandshake,
    Hello,
    LinkConnection,
    WebsocketsTransport,
    Welcome,
    encode,
    receive_frame,
)
from app.link.connection import Handler
from app.master.links import CLOSE_REPLACED, CLOSE_UNRESPONSIVE, Admission, EdgeLinks
from tests.support.wait import wait_until

EDGE = "edge-1"
SECRET = "edge-secret"
PING_S = 0.05
WAIT = 5.0


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

    async def end_grace(self, edge_id: str) -> None:
        pass


async def no_event(edge_id: str, event: Any) -> None:
    pass


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
async def url(listener: Listener) -> AsyncIterator[str]:
    links = EdgeLinks(
        secrets=Secrets(),
        handlers=lambda edge_id: {},
        on_event=no_event,
        max_frame=1 << 20,
        request_timeout=WAIT,
        ping_interval=PING_S,
    )
    links.listener = listener
    app = Starlette(routes=[WebSocketRoute("/api/edge/link", links.serve)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=WAIT, message="uvicorn to start")
    yield f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/api/edge/link"
    server.should_exit = True
    await asyncio.wait_for(serving, WAIT)


@asynccontextmanager
async def edge(
    url: str, handlers: Mapping[str, Handler] | None = None
) -> AsyncIterator[ClientConnection]:
    """An authenticated edge; it answers requests only when given ``handlers``."""
    async with connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        handshake = EdgeHandshake(
            EDGE, SECRET, boot_time=0.0, devices_loaded=True, replica_seq=0, commit=None
        )
        challenge = await receive_frame(transport, Challenge)
        await transport.send(encode(handshake.receive_challenge(challenge)))
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
            assert await close_code(first) == CLOSE_REPLACED
            await wait_until(lambda: listener.events[-1] == "up", timeout=WAIT)
            assert listener.events == ["admit", "up", "admit", "up"]
    await wait_until(lambda: "down" in listener.events, timeout=WAIT)
    assert listener.events == ["admit", "up", "admit", "up", "down"]


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
        assert await close_code(silent) == CLOSE_UNRESPONSIVE
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
        assert await wrong_hello(url) == 4401

    async with edge(url):
        await wait_until(lambda: "up" in listener.events, timeout=WAIT, message="the link up")
