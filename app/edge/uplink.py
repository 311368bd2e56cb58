"""The edge's end of the control link: connect out, authenticate, serve, retry.

Liveness is the websockets client's job: it pings every ``ENGINE_PING_INTERVAL_S`` and
drops the connection when no pong came back within three intervals, so a half-open
TCP connection is detected and not only a clean close.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import connect

from app.link import (
    CLOSE_AUTH_FAILED,
    AuthFailed,
    Challenge,
    Control,
    EdgeHandshake,
    FrameError,
    LinkConnection,
    TransportClosed,
    WebsocketsTransport,
    Welcome,
    encode,
    receive_frame,
)
from app.link.connection import EventHandler, Handler
from app.settings import Settings

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0


class LinkRefused(Exception):
    """The master closed the handshake with 4401: it does not accept this edge's proof."""


@dataclass(frozen=True, slots=True)
class HelloFacts:
    """What the edge brings to negotiation, read fresh at every connection attempt."""

    devices_loaded: bool
    replica_seq: int
    commit: str | None


class UplinkListener(Protocol):
    """Follows the link: what the master said on connect, and every loss."""

    def hello_facts(self) -> HelloFacts: ...

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None: ...

    async def disconnected(self, reason: str) -> None: ...

    async def attempt_failed(self, reason: str, *, refused: bool) -> None:
        """A connection attempt failed; ``refused``: the master refused this edge's proof."""
        ...


def link_url(master_url: str) -> str:
    """``https://master`` → ``wss://master/api/edge/link``."""
    base = master_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/api/edge/link"
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://") + "/api/edge/link"
    return base + "/api/edge/link"


def client_tls(settings: Settings) -> ssl.SSLContext | None:
    """Verify the master against ``ENGINE_TLS_CA`` when given (system roots otherwise)."""
    if not settings.master_url or not settings.master_url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)


class Uplink:
    """Keeps one authenticated link to the master, retrying every ``link_retry_s``."""

    def __init__(
        self,
        settings: Settings,
        *,
        handlers: Mapping[str, Handler],
        on_event: EventHandler,
        listener: UplinkListener,
        boot_time: float,
    ) -> None:
        if not settings.master_url or not settings.edge_id or not settings.edge_secret:
            raise ValueError(
                "an edge needs ENGINE_MASTER_URL, ENGINE_EDGE_ID and ENGINE_EDGE_SECRET"
            )
        self._settings = settings
        self._edge_id: str = settings.edge_id
        self._secret: str = settings.edge_secret
        self._url = link_url(settings.link_url or settings.master_url)
        self._tls = client_tls(settings)
        self._handlers = handlers
        self._on_event = on_event
        self._listener = listener
        self._boot_time = boot_time
        self.link: LinkConnection | None = None

    @property
    def connected(self) -> bool:
        return self.link is not None and not self.link.closed

    async def run_forever(self) -> None:
        """Connect, serve until the link drops, wait ``link_retry_s``, again."""
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is a failed attempt; never stop trying
                reason = _describe(exc)
                log.warning("link to %s failed: %s", self._url, reason)
                await self._listener.attempt_failed(reason, refused=isinstance(exc, LinkRefused))
            await asyncio.sleep(self._settings.link_retry_s)

    async def _connect_once(self) -> None:
        interval = self._settings.ping_interval_s
        async with connect(
            self._url,
            ssl=self._tls,
            ping_interval=interval,
            ping_timeout=3 * interval,
            max_size=self._settings.link_max_frame,
            open_timeout=HANDSHAKE_TIMEOUT,
            close_timeout=1,
            # Link frames are small JSON: deflating them costs more than it saves.
            compression=None,
        ) as websocket:
            transport = WebsocketsTransport(websocket)
            try:
                welcome, control = await self._handshake(transport)
            except TransportClosed:
                if websocket.close_code == CLOSE_AUTH_FAILED:
                    raise LinkRefused() from None
                raise
            link = LinkConnection(
                transport,
                handlers=self._handlers,
                on_event=self._on_event,
                name="master",
                max_size=self._settings.link_max_frame,
                default_timeout=self._settings.request_timeout_s,
            )
            self.link = link
            runner = asyncio.create_task(link.run())
            try:
                await self._listener.connected(link, welcome, control)
                await runner
            finally:
                runner.cancel()
                self.link = None
                code = websocket.close_code
                await self._listener.disconnected(
                    f"the link dropped (close code {code})" if code else "the link dropped"
                )

    async def _handshake(self, transport: WebsocketsTransport) -> tuple[Welcome, Control]:
        facts = self._listener.hello_facts()
        handshake = EdgeHandshake(
            self._edge_id,
            self._secret,
            boot_time=self._boot_time,
            devices_loaded=facts.devices_loaded,
            replica_seq=facts.replica_seq,
            commit=facts.commit,
        )
        max_size = self._settings.link_max_frame
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            challenge = await receive_frame(transport, Challenge, max_size=max_size)
            await transport.send(encode(handshake.receive_challenge(challenge)))
            welcome = await receive_frame(transport, Welcome, max_size=max_size)
            handshake.receive_welcome(welcome)
            control = await receive_frame(transport, Control, max_size=max_size)
        return welcome, control


def _describe(exc: Exception) -> str:
    if isinstance(exc, AuthFailed):
        return f"the master failed authentication ({exc})"
    if isinstance(exc, LinkRefused):
        return "the master refused this edge's proof: its ENGINE_EDGE_SECRET is wrong or revoked"
    if isinstance(exc, TransportClosed):
        return "the master closed the connection during the handshake"
    if isinstance(exc, FrameError):
        return f"bad handshake frame: {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
