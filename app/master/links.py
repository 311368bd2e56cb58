"""The master's end of the control links: authenticate edges and keep one link per edge.

The handshake itself is pure (:mod:`app.link.handshake`); this class does the I/O
around it — throttling peers that keep failing, bounding each step in time, replacing
an edge's old link when it connects again, dropping a link whose edge stopped
answering — and reports links up and down to a listener, which decides control.
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
    LinkClosed,
    LinkConnection,
    LinkRequestError,
    LinkTimeout,
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
#: Close code for a link whose edge stopped answering.
CLOSE_UNRESPONSIVE = 4008
#: Ping intervals without an answer after which a link is dead (DESIGN §2).
MISSED_PINGS = 3
#: Seconds an edge has for each handshake step.
HANDSHAKE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Admission:
    """What the master tells an edge right after authenticating it."""

    master_booting: bool
    control: Control


class LinkListener(Protocol):
    """Decides control for each link and follows links going up and down.

    Every admitted edge gets exactly one ``link_down`` once its connection ends,
    unless a newer connection of the same edge was admitted meanwhile: a replaced
    link is not the edge going away.
    """

    async def admit(self, hello: Hello) -> Admission: ...

    async def link_up(self, edge_id: str, link: LinkConnection, hello: Hello) -> None: ...

    async def link_down(self, edge_id: str) -> None: ...


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
        ping_interval: float,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self._lookup_secret = lookup_secret
        self._handlers = handlers
        self._on_event = on_event
        self._max_frame = max_frame
        self._request_timeout = request_timeout
        self._ping_interval = ping_interval
        self._throttle = throttle or FailureThrottle()
        self._nonces = NonceRegistry(ttl=3600.0)
        self._links: dict[str, LinkConnection] = {}
        #: The latest admitted connection of each edge; only its end is the edge's link down.
        self._admissions: dict[str, object] = {}
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
        authenticated = await self._authenticate(transport, peer)
        if authenticated is None:
            return
        handshake, hello = authenticated
        edge_id, admission = hello.edge_id, object()
        self._admissions[edge_id] = admission
        link: LinkConnection | None = None
        try:
            admitted = await self._admit(hello)
            await transport.send(
                encode(
                    handshake.welcome(
                        master_booting=admitted.master_booting, epoch=admitted.control.epoch
                    )
                )
            )
            await transport.send(encode(admitted.control))
            link = await self._register(edge_id, transport)
            await self._run(edge_id, link, hello)
        except TransportClosed:
            log.info("edge %s went away during its handshake", edge_id)
        finally:
            if link is not None and self._links.get(edge_id) is link:
                del self._links[edge_id]
            if self._admissions.get(edge_id) is admission:
                del self._admissions[edge_id]
                if self.listener is not None:
                    await self.listener.link_down(edge_id)

    async def _register(self, edge_id: str, transport: StarletteTransport) -> LinkConnection:
        """Make ``transport`` the edge's link, closing the one it replaces."""
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
        return link

    async def _run(self, edge_id: str, link: LinkConnection, hello: Hello) -> None:
        """Serve the link until it closes or the edge stops answering."""
        runner = asyncio.create_task(link.run())
        heartbeat = asyncio.create_task(self._heartbeat(link))
        tasks = [runner, heartbeat]
        if self.listener is not None:
            tasks.append(asyncio.create_task(self.listener.link_up(edge_id, link, hello)))
        try:
            await asyncio.wait([runner, heartbeat], return_when=asyncio.FIRST_COMPLETED)
            if not runner.done():
                log.warning("edge %s stopped answering: dropping its link", edge_id)
                await link.close(CLOSE_UNRESPONSIVE, "no answer to pings")
            # link_up finishes promptly now: whatever it still waits for failed with the link.
            await asyncio.gather(*tasks[2:])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat(self, link: LinkConnection) -> None:
        """Return once the edge has left ``MISSED_PINGS`` ping intervals without an answer.

        The websocket's own pings cannot be relied on here: over TLS the server only
        hears of a dead peer when the TLS shutdown times out, long after the pings did.
        """
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                await link.request("ping", {}, timeout=MISSED_PINGS * self._ping_interval)
            except (LinkTimeout, LinkClosed):
                return
            except LinkRequestError:
                pass  # an answer all the same

    async def _authenticate(
        self, transport: StarletteTransport, peer: str
    ) -> tuple[MasterHandshake, Hello] | None:
        handshake = MasterHandshake(self._nonces)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await transport.send(encode(handshake.start()))
                hello = await receive_frame(transport, Hello, max_size=self._max_frame)
                handshake.receive(hello, await self._lookup_secret(hello.edge_id))
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
        return handshake, hello

    async def _admit(self, hello: Hello) -> Admission:
        if self.listener is None:
            return Admission(False, Control(controller="edge", epoch=0))
        return await self.listener.admit(hello)

    async def close_all(self) -> None:
        for link in list(self._links.values()):
            await link.close(1001, "master shutting down")
