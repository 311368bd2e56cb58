"""The transport adapters over real loopback sockets: websockets on both ends, and a
websockets client talking to a Starlette route served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from app.link.auth import AuthFailed, NonceRegistry
from app.link.codec import encode
from app.link.codes import CloseCode
from app.link.connection import LinkConnection
from app.link.handshake import EdgeHandshake, MasterHandshake
from app.link.messages import Challenge, Hello, Welcome
from app.link.ops import Handler
from app.link.pending import LinkClosed
from app.link.transports import (
    FrameTransport,
    StarletteTransport,
    TransportClosed,
    WebsocketsTransport,
    receive_frame,
)
from tests.support.wait import wait_until

SECRET = "edge-secret"
EDGE = "edge 'edge-1'"
WAIT = 5.0


async def echo(args: dict[str, Any]) -> dict[str, Any]:
    return args


class Hang:
    """A handler that never answers; counts the requests it holds."""

    def __init__(self) -> None:
        self.held = 0

    async def __call__(self, args: dict[str, Any]) -> None:
        self.held += 1
        await asyncio.Event().wait()


async def master_handshake(transport: FrameTransport) -> bool:
    """The master's side of the handshake; closes with 4401 when the edge fails it."""
    handshake = MasterHandshake(NonceRegistry(ttl=60.0))
    await transport.send(encode(handshake.start()))
    try:
        handshake.receive(await receive_frame(transport, Hello), [SECRET])
    except AuthFailed:
        await transport.close(CloseCode.AUTH_FAILED)
        return False
    await transport.send(encode(handshake.welcome(master_booting=False, epoch=1)))
    return True


async def edge_handshake(transport: FrameTransport, secret: str = SECRET) -> None:
    handshake = EdgeHandshake(
        "edge-1", secret, boot_time=0.0, devices_loaded=False, replica_seq=0, commit=None
    )
    challenge = await receive_frame(transport, Challenge)
    await transport.send(encode(handshake.receive_challenge(challenge)))
    handshake.receive_welcome(await receive_frame(transport, Welcome))


@asynccontextmanager
async def websockets_master(
    links: list[LinkConnection], handlers: dict[str, Handler]
) -> AsyncIterator[str]:
    async def accept_edge(websocket: ServerConnection) -> None:
        transport = WebsocketsTransport(websocket)
        if await master_handshake(transport):
            link = LinkConnection(transport, handlers=handlers, name=EDGE)
            links.append(link)
            await link.run()

    async with serve(accept_edge, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@asynccontextmanager
async def starlette_master(
    links: list[LinkConnection], handlers: dict[str, Handler]
) -> AsyncIterator[str]:
    async def accept_edge(websocket: WebSocket) -> None:
        await websocket.accept()
        transport = StarletteTransport(websocket)
        if await master_handshake(transport):
            link = LinkConnection(transport, handlers=handlers, name=EDGE)
            links.append(link)
            await link.run()

    app = Starlette(routes=[WebSocketRoute("/api/edge/link", accept_edge)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=WAIT, message="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/api/edge/link"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT)


MASTERS = [websockets_master, starlette_master]


@pytest.mark.parametrize("master", MASTERS)
async def test_requests_flow_both_ways_after_the_handshake(master: Any) -> None:
    master_links: list[LinkConnection] = []
    async with master(master_links, {"echo": echo}) as url, connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        await edge_handshake(transport)
        edge = LinkConnection(transport, handlers={"echo": echo}, name="master")
        edge_run = asyncio.create_task(edge.run())

        from_master = await asyncio.gather(*(edge.request("echo", {"n": n}) for n in range(50)))
        await wait_until(lambda: bool(master_links), timeout=WAIT)
        from_edge = await master_links[0].request("echo", {"edge": True})
        await edge.close()
        await asyncio.wait_for(edge_run, WAIT)

    assert from_master == [{"n": n} for n in range(50)]
    assert from_edge == {"edge": True}


@pytest.mark.parametrize("master", MASTERS)
async def test_edge_going_away_fails_the_masters_pending_requests(master: Any) -> None:
    master_links: list[LinkConnection] = []
    async with master(master_links, {"echo": echo}) as url, connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        await edge_handshake(transport)
        hang = Hang()
        edge = LinkConnection(transport, handlers={"hang": hang}, name="master")
        edge_run = asyncio.create_task(edge.run())
        await wait_until(lambda: bool(master_links), timeout=WAIT)
        pending = asyncio.create_task(master_links[0].request("hang"))
        await wait_until(lambda: hang.held == 1, timeout=WAIT)

        await edge.close()

        with pytest.raises(LinkClosed, match="edge 'edge-1' is not connected"):
            await asyncio.wait_for(pending, WAIT)
        await asyncio.wait_for(edge_run, WAIT)


@pytest.mark.parametrize("master", MASTERS)
async def test_master_going_away_fails_the_edges_pending_requests(master: Any) -> None:
    master_links: list[LinkConnection] = []
    hang = Hang()
    async with master(master_links, {"hang": hang}) as url, connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        await edge_handshake(transport)
        edge = LinkConnection(transport, handlers={}, name="master")
        edge_run = asyncio.create_task(edge.run())
        pending = asyncio.create_task(edge.request("hang"))
        await wait_until(lambda: hang.held == 1, timeout=WAIT)

        await master_links[0].close()

        with pytest.raises(LinkClosed, match="master is not connected"):
            await asyncio.wait_for(pending, WAIT)
        await asyncio.wait_for(edge_run, WAIT)


@pytest.mark.parametrize("master", MASTERS)
async def test_a_wrong_secret_is_closed_with_4401(master: Any) -> None:
    async with master([], {}) as url, connect(url) as websocket:
        transport = WebsocketsTransport(websocket)
        with pytest.raises(TransportClosed):
            await edge_handshake(transport, secret="guess")

    assert websocket.close_code == CloseCode.AUTH_FAILED


@pytest.mark.parametrize("master", MASTERS)
async def test_a_link_closed_for_size_is_logged_with_the_code_and_the_frame_size(
    master: Any, caplog: pytest.LogCaptureFixture
) -> None:
    master_links: list[LinkConnection] = []
    async with master(master_links, {}) as url, connect(url, max_size=4096) as websocket:
        transport = WebsocketsTransport(websocket)
        await edge_handshake(transport)
        edge = LinkConnection(transport, handlers={}, name="master", max_size=4096)
        edge_run = asyncio.create_task(edge.run())
        await wait_until(lambda: bool(master_links), timeout=WAIT)
        with caplog.at_level("ERROR", logger="app.link.connection"):
            # The master is configured with the default limit: the edge's is smaller.
            await master_links[0].send_event("pad", blob="x" * 10_000)
            await asyncio.wait_for(edge_run, WAIT)

    closed = [r.getMessage() for r in caplog.records if "closed for size" in r.getMessage()]
    assert closed, caplog.text
    assert "close code 1009" in closed[0]
    assert any("largest frame sent was 100" in line for line in closed), closed
