"""Edges played by a test on ``WS /api/edge/link``: a well-behaved one and a scripted one.

Both authenticate with an edge's real secret, exactly as a real edge does. An
:class:`EdgeLink` then serves the link like the real edge (a `LinkConnection`), while
a :class:`RawLink` sends whatever frames the test gives it, to see how the master
copes with what no real edge would send.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from app.link import (
    Challenge,
    Control,
    EdgeHandshake,
    LinkConnection,
    WebsocketsTransport,
    Welcome,
    encode,
    receive_frame,
)
from app.urls import LINK_PATH, websocket_url

#: Ids of the requests a :class:`RawLink` sends itself, far from any a test would pick.
FIRST_PROBE_ID = 1 << 62


async def authenticate(websocket: ClientConnection, edge_id: str, secret: str) -> Control:
    """Run the edge's side of the handshake; the master's control decision follows it."""
    transport = WebsocketsTransport(websocket)
    handshake = EdgeHandshake(
        edge_id, secret, boot_time=time.time(), devices_loaded=False, replica_seq=0, commit=None
    )
    challenge = await receive_frame(transport, Challenge)
    await transport.send(encode(handshake.receive_challenge(challenge)))
    handshake.receive_welcome(await receive_frame(transport, Welcome))
    return await receive_frame(transport, Control)


async def _no_modules(args: dict[str, Any]) -> dict[str, Any]:
    return {}


class EdgeLink:
    """A well-behaved edge that runs no modules: it answers ``status`` with none."""

    def __init__(self, link: LinkConnection) -> None:
        self.link = link

    @classmethod
    @asynccontextmanager
    async def open(
        cls, base_url: str, edge_id: str, secret: str, *, tls: ssl.SSLContext | None = None
    ) -> AsyncIterator[EdgeLink]:
        async with connect(websocket_url(base_url, LINK_PATH), ssl=tls) as websocket:
            await authenticate(websocket, edge_id, secret)
            link = LinkConnection(
                WebsocketsTransport(websocket),
                handlers={"status": _no_modules},
                name="master",
                default_timeout=5.0,
            )
            runner = asyncio.create_task(link.run())
            try:
                yield cls(link)
            finally:
                await link.close()
                await runner

    async def changes_since(self, seq: int) -> dict[str, Any]:
        """Ask the master for the replica changes after ``seq``, as a real edge does."""
        answer: dict[str, Any] = await self.link.request("replica.changes", {"since": seq})
        return answer


class RawLink:
    """An authenticated link driven frame by frame.

    :meth:`exchange` sends one frame followed by a probe request the master must
    answer, and returns every frame the master sent meanwhile. The master reads a
    link's frames in order and reports a bad frame before reading the next, so those
    reports come first; answers to requests may come in any order, so the exchange
    also waits for the answer to the frame itself when it is a request.
    """

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self._probe_ids = itertools.count(FIRST_PROBE_ID)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, base_url: str, edge_id: str, secret: str, *, tls: ssl.SSLContext | None = None
    ) -> AsyncIterator[RawLink]:
        async with connect(websocket_url(base_url, LINK_PATH), ssl=tls) as websocket:
            await authenticate(websocket, edge_id, secret)
            yield cls(websocket)

    async def exchange(
        self, frame: str | bytes, *, answer_to: int | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Send ``frame`` and a probe; the master's frames until the probe, and the
        request ``answer_to`` when given, are answered."""
        probe_id = next(self._probe_ids)
        probe = {"id": probe_id, "type": "request", "op": "replica.changes", "args": {"limit": 1}}
        await self.websocket.send(frame)
        await self.websocket.send(json.dumps(probe))
        awaited = {probe_id} if answer_to is None else {probe_id, answer_to}
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while awaited:
                message = json.loads(await self.websocket.recv())
                received.append(message)
                if message.get("type") == "response":
                    awaited.discard(message.get("id"))
        return received
