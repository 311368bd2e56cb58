"""The transports a link runs over: text frames in and out of a websocket.

:class:`FrameTransport` is all a :class:`~app.link.connection.LinkConnection` needs of
its websocket. Two small adapters provide it: over a ``websockets`` connection (the
edge's client side) and over a Starlette ``WebSocket`` (the master's
``/api/edge/link`` route). :func:`receive_frame` reads the handshake's frames, before
a connection exists.

Liveness is not this module's job: the edge gives the ``websockets`` client
``ping_interval``/``ping_timeout``, and the master pings each edge over the link
(:mod:`app.master.links`). A dead peer then closes the transport, which fails every
pending request at once.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Protocol, TypeVar

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from starlette.websockets import WebSocketState as StarletteState
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from app.link.codec import DEFAULT_MAX_SIZE, FrameError, decode
from app.link.codes import CloseCode
from app.link.messages import Frame

FrameT = TypeVar("FrameT", bound=Frame)


class TransportClosed(Exception):
    """The transport is closed: nothing more can be sent or received.

    ``code`` and ``reason`` are the websocket close code and reason when known.
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


#: Close codes that mean a frame was over a limit (the websocket's or ours).
SIZE_CLOSE_CODES = frozenset({CloseCode.TOO_LARGE})


def _closed(exc: ConnectionClosed) -> TransportClosed:
    """A ``websockets`` close as `TransportClosed`; a close for size wins over the other."""
    frames = [close for close in (exc.rcvd, exc.sent) if close is not None]
    frames.sort(key=lambda close: close.code not in SIZE_CLOSE_CODES)
    if not frames:
        return TransportClosed(str(exc))
    return TransportClosed(str(exc), code=frames[0].code, reason=frames[0].reason)


class FrameTransport(Protocol):
    """A message-oriented, bidirectional channel of text frames."""

    async def send(self, text: str) -> None: ...

    async def recv(self) -> str | bytes:
        """The next frame; raises `TransportClosed` once the channel has closed."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the channel; a no-op when it is already closed."""
        ...


class WebsocketsTransport:
    """A `FrameTransport` over a ``websockets`` asyncio connection (client or server)."""

    def __init__(self, websocket: Connection) -> None:
        self._websocket = websocket

    async def send(self, text: str) -> None:
        try:
            await self._websocket.send(text)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def recv(self) -> str | bytes:
        try:
            return await self._websocket.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._websocket.close(code, reason)


class StarletteTransport:
    """A `FrameTransport` over an accepted Starlette ``WebSocket``.

    Frames go straight to and from the ASGI channel the socket was accepted on, as
    Starlette's own ``send``/``receive`` pass them on after checking the socket's state:
    on the master's hot path those checks and their two extra coroutines per frame were
    the price of nothing, so this transport keeps the little state it needs itself.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        # The channel Starlette itself reads and writes (its own attributes since 0.1).
        self._receive = websocket._receive
        self._send = websocket._send
        self._disconnect: Message | None = None

    async def send(self, text: str) -> None:
        if self._disconnect is not None or (
            self._websocket.application_state is not StarletteState.CONNECTED
        ):
            raise TransportClosed("websocket closed")
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as exc:  # the server's "client disconnected"
            raise TransportClosed("websocket closed") from exc

    async def recv(self) -> str | bytes:
        message = self._disconnect or await self._receive()
        if message["type"] == "websocket.disconnect":
            self._disconnect = message
            code, reason = message.get("code"), message.get("reason") or ""
            raise TransportClosed(f"websocket closed with code {code}", code=code, reason=reason)
        text: str | None = message.get("text")
        return text if text is not None else message["bytes"]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._websocket.application_state is StarletteState.DISCONNECTED:
            return
        with suppress(WebSocketDisconnect, WebSocketDisconnected):
            await self._websocket.close(code, reason)


async def receive_frame(
    transport: FrameTransport, expected: type[FrameT], *, max_size: int = DEFAULT_MAX_SIZE
) -> FrameT:
    """Read one handshake frame, which must be of the ``expected`` kind.

    Raises `TransportClosed`, or `FrameError` for a bad or unexpected frame.
    """
    frame = decode(await transport.recv(), max_size=max_size)
    if not isinstance(frame, expected):
        message = f"expected a {expected.__name__} frame, got {frame.type!r}"
        raise FrameError("unexpected_frame", message)
    return frame
