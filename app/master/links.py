"""The master's end of the control links: authenticate edges and keep one link per edge.

The handshake itself is pure (:mod:`app.link.handshake`); this class does the I/O
around it — bounding each step in time, replacing an edge's old link when the same
process connects again, refusing another process of an edge whose link is alive
(:mod:`app.master.duplicates`), dropping a link whose edge stopped answering, closing a
link whose secret was revoked — and reports links up and down to a listener, which
decides control. It records in a :class:`LinkTable` why each edge's link was last
refused or failed, and each edge's duplicate.

Failed handshakes are counted per (address, claimed edge id). A correct proof is
never refused, whatever others sent before it from the same address (NAT, reverse
proxies): the secrets are 256 random bits, so guessing is hopeless and a lockout
would only let a stranger keep a real edge out. Past the limit, refusals for that
pair cost no log line and no store read (secrets are cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from starlette.websockets import WebSocket

from app.control.clock import now_utc
from app.link import (
    AuthFailed,
    CloseCode,
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
from app.link.messages import Event
from app.link.ops import PING, Handler
from app.master.duplicates import Duplicate, Duplicates, Holder, is_duplicate
from app.store.base import StoreError

log = logging.getLogger(__name__)

#: Ping intervals without an answer after which a link is dead (DESIGN §2).
MISSED_PINGS = 3
#: Seconds an edge has for each handshake step.
HANDSHAKE_TIMEOUT = 5.0


class LoopStalls:
    """How long this process's event loop has been too busy to run anything on time.

    A ticker wakes every ``tick_s`` while someone watches and adds up how late it woke.
    A master swamped by work (a thousand edges catching up at once) reads its sockets
    late: an edge's answer waiting unread in a socket is not the edge's silence, so the
    heartbeat counts only the time the master was responsive (bench/README.md §6).
    """

    def __init__(self, tick_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._tick_s = tick_s
        self._clock = clock
        self._stalled = 0.0
        self._next_tick = clock()
        self._watchers = 0
        self._ticker: asyncio.Task[None] | None = None

    def stalled(self) -> float:
        """Seconds the loop has been late so far, the current delay included."""
        return self._stalled + max(0.0, self._clock() - self._next_tick)

    def responsive_since(self, at: float, stalled_then: float) -> float:
        """Seconds since ``at`` (with ``stalled()`` then) the loop ran on time."""
        return (self._clock() - at) - (self.stalled() - stalled_then)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Keep the ticker running while the block runs (it stops with its last watcher)."""
        self._watchers += 1
        if self._ticker is None:
            self._next_tick = self._clock() + self._tick_s
            self._ticker = asyncio.create_task(self._tick())
        try:
            yield
        finally:
            self._watchers -= 1
            if not self._watchers and self._ticker is not None:
                ticker, self._ticker = self._ticker, None
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._next_tick - self._clock()))
            now = self._clock()
            self._stalled += max(0.0, now - self._next_tick)
            self._next_tick = now + self._tick_s


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

    async def duplicate_refused(self, edge_id: str, duplicate: Duplicate, *, first: bool) -> None:
        """Another process authenticated as a linked edge and was refused; ``first``: the
        first refusal of that process (the one recorded)."""
        ...


class SecretSource(Protocol):
    """The secrets that authenticate each edge now."""

    async def valid(self, edge_id: str) -> list[str]: ...

    async def end_grace(self, edge_id: str, used: str) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkError:
    """Why an edge's link was last refused or failed, and when."""

    reason: str
    at: datetime


class LinkTable:
    """The current link of each edge, the secret it authenticated with, and why each
    edge's link was last refused or failed: what the rest of the master reads."""

    def __init__(self, secrets: SecretSource, *, duplicate_hold_s: float = 6.0) -> None:
        self._secrets = secrets
        self._links: dict[str, LinkConnection] = {}
        #: Each edge's duplicate, if another process tries to link as it.
        self.duplicates = Duplicates(hold_s=duplicate_hold_s)
        #: The secret each live link authenticated with (revoking it closes the link).
        self._secret_used: dict[str, str] = {}
        #: Why each edge's link was last refused or failed; cleared when it authenticates.
        self.link_errors: dict[str, LinkError] = {}

    def get(self, edge_id: str) -> LinkConnection | None:
        link = self._links.get(edge_id)
        return None if link is None or link.closed else link

    def connected(self) -> list[str]:
        return [edge_id for edge_id, link in self._links.items() if not link.closed]

    def install(self, edge_id: str, link: LinkConnection) -> LinkConnection | None:
        """Make ``link`` the edge's link; returns the one it replaces."""
        previous = self._links.get(edge_id)
        self._links[edge_id] = link
        return previous

    def authenticated(self, edge_id: str, secret: str) -> None:
        self._secret_used[edge_id] = secret

    def secret_used(self, edge_id: str) -> str | None:
        """The secret the edge's live link authenticated with; None without a link."""
        return self._secret_used.get(edge_id) if self.get(edge_id) is not None else None

    def remove(self, edge_id: str, link: LinkConnection) -> None:
        """The link ended: forget it unless a newer one replaced it."""
        if self._links.get(edge_id) is link:
            del self._links[edge_id]
            self._secret_used.pop(edge_id, None)

    def current(self, edge_id: str, link: LinkConnection) -> bool:
        return self._links.get(edge_id) is link

    def failed(self, edge_id: str, reason: str) -> None:
        self.link_errors[edge_id] = LinkError(reason, now_utc())

    async def revoke(self, edge_id: str) -> None:
        """Close the edge's live link when the secret it authenticated with is no longer valid."""
        used = self._secret_used.get(edge_id)
        link = self.get(edge_id)
        if used is None or link is None or used in await self._secrets.valid(edge_id):
            return
        log.warning("edge %s: the secret of its live link was revoked: closing it", edge_id)
        self.failed(edge_id, "the secret this link authenticated with was revoked")
        await link.close(CloseCode.AUTH_FAILED, "secret revoked")

    async def broadcast(self, event: str, **fields: Any) -> None:
        """Tell every connected edge; an edge whose link just closed misses it."""
        for edge_id in self.connected():
            link = self.get(edge_id)
            if link is not None:
                with contextlib.suppress(LinkClosed):
                    await link.send_event(event, **fields)

    async def close_all(self) -> None:
        for link in list(self._links.values()):
            await link.close(CloseCode.GOING_AWAY, "master shutting down")


class EdgeLinks:
    """Accepts edges on ``WS /api/edge/link`` and keeps the current link of each."""

    def __init__(
        self,
        *,
        secrets: SecretSource,
        table: LinkTable,
        listener: LinkListener,
        handlers: Callable[[str], Mapping[str, Handler]],
        on_event: Callable[[str, Event], Awaitable[None]],
        max_frame: int,
        request_timeout: float,
        ping_interval: float,
        throttle: FailureThrottle | None = None,
        on_refused: Callable[[str | None], None] | None = None,
    ) -> None:
        self._secrets = secrets
        #: Hears every refused handshake: the edge's id when it is a known edge.
        self._on_refused = on_refused
        self._table = table
        self._listener = listener
        self._handlers = handlers
        self._on_event = on_event
        self._max_frame = max_frame
        self._request_timeout = request_timeout
        self._ping_interval = ping_interval
        self._throttle = throttle or FailureThrottle()
        self._nonces = NonceRegistry(ttl=3600.0)
        #: A stall shorter than a tick goes uncounted: a tenth of the interval at most.
        self._stalls = LoopStalls(tick_s=min(0.1, ping_interval / 10))
        #: The latest admitted connection of each edge (the process holding its link);
        #: only its end is the edge's link down.
        self._admissions: dict[str, Holder] = {}

    async def serve(self, websocket: WebSocket) -> None:
        """Run one edge connection from handshake to close."""
        peer = websocket.client.host if websocket.client else "unknown"
        await websocket.accept()
        transport = StarletteTransport(websocket)
        authenticated = await self._authenticate(transport, peer)
        if authenticated is None:
            return
        handshake, hello, secret = authenticated
        edge_id, now = hello.edge_id, now_utc()
        duplicates = self._table.duplicates
        holder = self._admissions.get(edge_id) or duplicates.held(edge_id, now)
        if is_duplicate(holder, hello.instance_id):
            assert holder is not None
            await self._refuse_duplicate(transport, hello, holder, peer, now)
            return
        admission = Holder(hello.instance_id, peer, now)
        self._admissions[edge_id] = admission
        duplicates.admitted(edge_id, admission)
        link: LinkConnection | None = None
        try:
            admitted = await self._listener.admit(hello)
            await transport.send(
                encode(
                    handshake.welcome(
                        master_booting=admitted.master_booting, epoch=admitted.control.epoch
                    )
                )
            )
            await transport.send(encode(admitted.control))
            link = await self._register(edge_id, transport)
            self._table.authenticated(edge_id, secret)
            await self._run(edge_id, link, hello)
        except TransportClosed:
            log.info("edge %s went away during its handshake", edge_id)
            self._failed(edge_id, "the edge went away during its handshake")
        finally:
            if link is not None:
                self._table.remove(edge_id, link)
            if self._admissions.get(edge_id) is admission:
                del self._admissions[edge_id]
                duplicates.released(edge_id, admission, now_utc())
                await self._listener.link_down(edge_id)

    async def _refuse_duplicate(
        self, transport: StarletteTransport, hello: Hello, holder: Holder, peer: str, now: datetime
    ) -> None:
        """Keep the first process's link: close this one with 4409 and say why; the first
        refusal of a process is logged and recorded, the rest only counted."""
        edge_id = hello.edge_id
        duplicate, first = self._table.duplicates.refused(
            edge_id, hello.instance_id, peer, holder, now
        )
        await transport.close(CloseCode.DUPLICATE, duplicate.reason())
        if first:
            log.warning(
                "edge %s: a second process (instance %s, from %s) authenticated while the "
                "link of instance %s (from %s) is alive: refused as a duplicate",
                edge_id,
                hello.instance_id,
                peer,
                holder.instance_id,
                holder.address,
            )
        await self._listener.duplicate_refused(edge_id, duplicate, first=first)

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
        previous = self._table.install(edge_id, link)
        if previous is not None and not previous.closed:
            log.info("edge %s reconnected: closing its previous link", edge_id)
            await previous.close(CloseCode.REPLACED, "replaced by a newer connection")
        return link

    async def _run(self, edge_id: str, link: LinkConnection, hello: Hello) -> None:
        """Serve the link until it closes or the edge stops answering."""
        runner = asyncio.create_task(link.run())
        heartbeat = asyncio.create_task(self._heartbeat(link))
        listening = asyncio.create_task(self._listener.link_up(edge_id, link, hello))
        tasks = [runner, heartbeat, listening]
        try:
            await asyncio.wait([runner, heartbeat], return_when=asyncio.FIRST_COMPLETED)
            if heartbeat.done() and heartbeat.result():
                log.warning("edge %s stopped answering: dropping its link", edge_id)
                silent = MISSED_PINGS * self._ping_interval
                self._failed(edge_id, f"no answer to pings for {silent:g} s")
                with contextlib.suppress(TransportClosed, RuntimeError):  # closed meanwhile
                    await link.close(CloseCode.UNRESPONSIVE, "no answer to pings")
            elif edge_id not in self._table.link_errors and self._table.current(edge_id, link):
                self._failed(edge_id, "the link closed")
            # link_up finishes promptly now: whatever it still waits for failed with the link.
            await asyncio.gather(*tasks[2:])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat(self, link: LinkConnection) -> bool:
        """Return True once the edge has left ``MISSED_PINGS`` ping intervals without an
        answer, False when the link closed first.

        Only time the master itself ran on time counts: while its event loop was too
        busy to read the edge's answers, the edge is not the one silent (`LoopStalls`).
        A frozen edge is still dropped after ``MISSED_PINGS`` intervals of a responsive
        master. The websocket's own pings cannot be relied on here: over TLS the server
        only hears of a dead peer when the TLS shutdown times out, long after the pings did.
        """
        silence = MISSED_PINGS * self._ping_interval
        stalls = self._stalls
        async with stalls.watching():
            answered, stalled = time.monotonic(), stalls.stalled()
            while True:
                await asyncio.sleep(self._ping_interval)
                try:
                    await PING.call(link, {}, timeout=silence)
                except LinkTimeout:
                    if stalls.responsive_since(answered, stalled) >= silence:
                        return True
                    continue  # the master was too busy to hear the answer: ask again
                except LinkClosed:
                    return False
                except LinkRequestError:
                    pass  # an answer all the same
                answered, stalled = time.monotonic(), stalls.stalled()

    async def _authenticate(
        self, transport: StarletteTransport, peer: str
    ) -> tuple[MasterHandshake, Hello, str] | None:
        handshake = MasterHandshake(self._nonces)
        claimed, valid = "?", []
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await transport.send(encode(handshake.start()))
                hello = await receive_frame(transport, Hello, max_size=self._max_frame)
                claimed = hello.edge_id
                valid = await self._secrets.valid(claimed)
                secret = handshake.receive(hello, valid)
        except (AuthFailed, FrameError, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, AuthFailed) else f"bad handshake: {exc}"
            self._refused(peer, claimed, reason, known=bool(valid))
            await transport.close(CloseCode.AUTH_FAILED)
            return None
        except TransportClosed:
            return None
        self._throttle.record_success(f"{peer} {claimed}")
        self._table.link_errors.pop(claimed, None)
        log.info("edge %s authenticated from %s", claimed, peer)
        if secret != valid[-1]:  # older secrets are still valid: they end now
            await self._end_grace(claimed, secret)
        return handshake, hello, secret

    def _refused(self, peer: str, claimed: str, reason: str, *, known: bool) -> None:
        """Count a failed handshake; log it while the (address, edge id) pair is under the limit."""
        key = f"{peer} {claimed}"
        if self._on_refused is not None:
            self._on_refused(claimed if known else None)
        quiet = not self._throttle.allowed(key)
        self._throttle.record_failure(key)
        if not quiet:
            log.warning("link from %s claiming edge %r refused: %s", peer, claimed, reason)
            if not self._throttle.allowed(key):
                log.warning(
                    "link from %s claiming edge %r: more refusals are not logged for %.0f s",
                    peer,
                    claimed,
                    self._throttle.retry_after(key),
                )
        if known:
            self._failed(claimed, f"{reason} (from {peer})")

    def _failed(self, edge_id: str, reason: str) -> None:
        self._table.failed(edge_id, reason)

    async def _end_grace(self, edge_id: str, used: str) -> None:
        try:
            await self._secrets.end_grace(edge_id, used)
        except StoreError as exc:
            log.warning("edge %s: older secrets stay until their grace ends: %s", edge_id, exc)
