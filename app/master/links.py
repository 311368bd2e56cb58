"""The master's end of the control links: authenticate edges and keep one link per edge.

The handshake itself is pure (:mod:`app.link.handshake`); this class does the I/O
around it — throttling peers that keep failing, bounding each step in time, replacing
an edge's old link when it connects again — and reports links up and down to a
listener, which decides control.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket

from app.link import (
    CLOSE_AUTH_FAILED,
    AuthFailed,
    Control,
    FailureThrottle,
    FrameError,
    Hello,
    LinkConnection,
    MasterHandshake,
    NonceRegistry,
    StarletteTransport,
    TransportClosed,
    encode,
    receive_frame,
)
from app.link.connection import Handler
from app.link.messages import Event

log = logging.getLogger(__name__)

#: Close code for a link replaced by a newer authenticated connection of the same edge.
CLOSE_REPLACED = 4000
#: Seconds an edge has for each handshake step.
HANDSHAKE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Admission:
    """What the master tells an edge right after authenticating it."""

    master_booting: bool
    control: Control


class LinkListener(Protocol):
    """Decides control for each link and follows links going up and down."""

    async def admit(self, hello: Hello) -> Admission: ...

    async def link_up(self, edge_id: str, link: LinkConnection, hello: Hello) -> None: ...

    async def link_down(self, edge_id: str, link: LinkConnection) -> None: ...


class EdgeLinks:
    """Accepts edges on ``WS /api/edge/link`` and keeps the current link of each."""

    def __init__(
        self,
        *,
        lookup_secret: Callable[[str], Awaitable[str | None]],
        handlers: Callable[[str], Mapping[str, Handler]],
        on_event: Callable[[str, Event], Awaitable[None]],
        max_frame: int,
        request_timeout: float,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self._lookup_secret = lookup_secret
        self._handlers = handlers
        self._on_event = on_event
        self._max_frame = max_frame
        self._request_timeout = request_timeout
        self._throttle = throttle or FailureThrottle()
        self._nonces = NonceRegistry(ttl=3600.0)
        self._links: dict[str, LinkConnection] = {}
        self.listener: LinkListener | None = None

    def get(self, edge_id: str) -> LinkConnection | None:
        link = self._links.get(edge_id)
        return None if link is None or link.closed else link

    def connected(self) -> list[str]:
        return [edge_id for edge_id, link in self._links.items() if not link.closed]

    async def serve(self, websocket: WebSocket) -> None:
        """Run one edge connection from handshake to close."""
        peer = websocket.client.host if websocket.client else "unknown"
        if not self._throttle.allowed(peer):
            log.warning("refusing link from %s: too many failed handshakes", peer)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        transport = StarletteTransport(websocket)
        hello = await self._authenticate(transport, peer)
        if hello is None:
            return
        edge_id = hello.edge_id
        link = LinkConnection(
            transport,
            handlers=self._handlers(edge_id),
            on_event=lambda event: self._on_event(edge_id, event),
            name=f"edge {edge_id!r}",
            max_size=self._max_frame,
            default_timeout=self._request_timeout,
        )
        previous = self._links.get(edge_id)
        self._links[edge_id] = link
        if previous is not None and not previous.closed:
            log.info("edge %s reconnected: closing its previous link", edge_id)
            await previous.close(CLOSE_REPLACED, "replaced by a newer connection")
        runner = asyncio.create_task(link.run())
        try:
            if self.listener is not None:
                await self.listener.link_up(edge_id, link, hello)
            await runner
        finally:
            runner.cancel()
            # A link replaced by a newer one of the same edge is not the edge going away.
            if self._links.get(edge_id) is link:
                del self._links[edge_id]
                if self.listener is not None:
                    await self.listener.link_down(edge_id, link)

    async def _authenticate(self, transport: StarletteTransport, peer: str) -> Hello | None:
        handshake = MasterHandshake(self._nonces)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await transport.send(encode(handshake.start()))
                hello = await receive_frame(transport, Hello, max_size=self._max_frame)
                handshake.receive(hello, await self._lookup_secret(hello.edge_id))
                admission = await self._admit(hello)
                await transport.send(
                    encode(
                        handshake.welcome(
                            master_booting=admission.master_booting, epoch=admission.control.epoch
                        )
                    )
                )
                await transport.send(encode(admission.control))
        except AuthFailed as exc:
            self._throttle.record_failure(peer)
            log.warning("link from %s refused: %s", peer, exc)
            await transport.close(CLOSE_AUTH_FAILED)
            return None
        except (FrameError, TimeoutError) as exc:
            self._throttle.record_failure(peer)
            log.warning("link from %s refused: bad handshake: %s", peer, exc)
            await transport.close(CLOSE_AUTH_FAILED)
            return None
        except TransportClosed:
            return None
        self._throttle.record_success(peer)
        log.info("edge %s authenticated from %s", hello.edge_id, peer)
        return hello

    async def _admit(self, hello: Hello) -> Admission:
        if self.listener is None:
            return Admission(False, Control(controller="edge", epoch=0))
        return await self.listener.admit(hello)

    async def close_all(self) -> None:
        for link in list(self._links.values()):
            await link.close(1001, "master shutting down")
