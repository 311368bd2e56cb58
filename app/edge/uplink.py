"""The edge's end of the control link: connect out, authenticate, serve, retry.

Liveness is the websockets client's job: it pings every ``ENGINE_PING_INTERVAL_S`` and
drops the connection when no pong came back within three intervals, so a half-open
TCP connection is detected and not only a clean close. Each failed attempt is
classified (:func:`app.link.classify`): whether the master answered decides whether
the edge may take its devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect

from app.link import (
    Challenge,
    Control,
    EdgeHandshake,
    HandshakeClosed,
    LinkConnection,
    LinkFailure,
    TransportClosed,
    WebsocketsTransport,
    Welcome,
    classify,
    encode,
    receive_frame,
)
from app.link.connection import EventHandler
from app.link.ops import Handler
from app.settings import Settings
from app.urls import LINK_PATH, websocket_url

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0


def new_instance_id() -> str:
    """This process's instance id: random at every start, carried in the hello."""
    return secrets.token_hex(8)


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

    async def attempt_failed(self, failure: LinkFailure) -> None:
        """A connection attempt failed, classified: did the master answer?"""
        ...


def client_tls(settings: Settings) -> ssl.SSLContext | None:
    """Verify the master against ``ENGINE_TLS_CA`` when given (system roots otherwise)."""
    if not settings.master_url or not settings.master_url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)


class CurrentLink:
    """The edge's link to the master while it is up: set by the :class:`Uplink`, read by
    whatever sends to the master."""

    def __init__(self) -> None:
        self.link: LinkConnection | None = None
        self._retry_now = asyncio.Event()

    def get(self) -> LinkConnection | None:
        return self.link

    @property
    def connected(self) -> bool:
        return self.link is not None and not self.link.closed

    def retry_now(self) -> None:
        """Cut the wait before the next attempt short (the master came back into reach)."""
        self._retry_now.set()

    async def wait_to_retry(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt, or until :meth:`retry_now`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._retry_now.wait()
        self._retry_now.clear()


class Uplink:
    """Keeps one authenticated link to the master, retrying every ``link_retry_s``."""

    def __init__(
        self,
        settings: Settings,
        *,
        current: CurrentLink,
        handlers: Mapping[str, Handler],
        on_event: EventHandler,
        listener: UplinkListener,
        boot_time: float,
        on_certificate: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        if not settings.master_url or not settings.edge_id or not settings.edge_secret:
            raise ValueError(
                "an edge needs ENGINE_MASTER_URL, ENGINE_EDGE_ID and ENGINE_EDGE_SECRET"
            )
        self._settings = settings
        self._edge_id: str = settings.edge_id
        self._secret: str = settings.edge_secret
        self._url = websocket_url(settings.link_url or settings.master_url, LINK_PATH)
        self._tls = client_tls(settings)
        self._handlers = handlers
        self._on_event = on_event
        self._listener = listener
        self._boot_time = boot_time
        self._current = current
        #: Tells this process from another started with the same edge id and secret.
        self.instance_id = new_instance_id()
        self._on_certificate = on_certificate

    async def run_forever(self) -> None:
        """Connect, serve until the link drops, wait ``link_retry_s``, again."""
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is a failed attempt; never stop trying
                failure = classify(exc)
                log.warning("link to %s failed (%s): %s", self._url, failure.kind, failure.detail)
                await self._listener.attempt_failed(failure)
            await self._current.wait_to_retry(self._settings.link_retry_s)

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
            self._saw_certificate(websocket)
            transport = WebsocketsTransport(websocket)
            try:
                welcome, control = await self._handshake(transport)
            except TransportClosed:
                received = websocket.protocol.close_rcvd
                if received is None:
                    raise HandshakeClosed(None) from None
                raise HandshakeClosed(received.code, received.reason) from None
            link = LinkConnection(
                transport,
                handlers=self._handlers,
                on_event=self._on_event,
                name="master",
                max_size=self._settings.link_max_frame,
                default_timeout=self._settings.request_timeout_s,
            )
            self._current.link = link
            runner = asyncio.create_task(link.run())
            try:
                await self._listener.connected(link, welcome, control)
                await runner
            finally:
                runner.cancel()
                self._current.link = None
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
            instance_id=self.instance_id,
        )
        max_size = self._settings.link_max_frame
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            challenge = await receive_frame(transport, Challenge, max_size=max_size)
            await transport.send(encode(handshake.receive_challenge(challenge)))
            welcome = await receive_frame(transport, Welcome, max_size=max_size)
            handshake.receive_welcome(welcome)
            control = await receive_frame(transport, Control, max_size=max_size)
        return welcome, control

    def _saw_certificate(self, websocket: ClientConnection) -> None:
        """Report the master's certificate (verified, so its dates are readable)."""
        if self._on_certificate is None:
            return
        tls = websocket.transport.get_extra_info("ssl_object")
        certificate = tls.getpeercert() if isinstance(tls, ssl.SSLObject) else None
        if certificate:
            self._on_certificate(dict(certificate))
