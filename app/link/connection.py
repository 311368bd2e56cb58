"""The link over a live websocket: the one place the protocol meets asyncio I/O.

`LinkConnection` multiplexes requests both ways over a `FrameTransport`. Two small
adapters make transports of a ``websockets`` connection (the edge's client side) and of
a Starlette ``WebSocket`` (the master's ``/api/edge/link`` route).

Liveness is the websocket library's job, not this module's: give the ``websockets``
client ``ping_interval``/``ping_timeout``, and uvicorn ``ws_ping_interval``/
``ws_ping_timeout``. A dead peer then closes the transport, which fails every pending
request at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from contextlib import suppress
from typing import Any, Protocol, TypeVar

from pydantic_core import PydanticSerializationError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from starlette.websockets import WebSocketState as StarletteState
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from app.errors import ContentTooLarge, EngineError
from app.link.codec import (
    DEFAULT_MAX_SIZE,
    Call,
    FrameError,
    Reply,
    decode,
    encode_event,
    encode_failure,
    encode_request,
    encode_result,
    frame_size,
    read,
)
from app.link.codes import CloseCode, ErrorCode
from app.link.messages import Event, Frame, Request, Response
from app.link.ops import BadArgs, Handler
from app.link.pending import LinkClosed, PendingRequests, error_code

logger = logging.getLogger(__name__)

EventHandler = Callable[[Event], Awaitable[None] | None]

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


class _Resumed:
    """Awaits a coroutine that has already run up to its first wait, on ``waiting_on``
    (what its ``send(None)`` yielded): ``await coroutine`` without the first step."""

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # a cancellation, say: the coroutine handles it
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration:
                    return


class LinkConnection:
    """Requests, responses and events over one transport, many in flight at once.

    Start it after the handshake and keep `run` running while it is used: `run` reads
    the replies and drives the deadlines. ``name`` names the peer in errors ("edge
    'edge-1'", "master"). A request is answered as it is read; one whose answer has to
    wait is left to wait in a task of its own while the reading goes on, so replies may
    go out in any order. Events are handed to ``on_event`` in the order they arrive, one at
    a time: keep it quick.
    """

    def __init__(
        self,
        transport: FrameTransport,
        *,
        handlers: Mapping[str, Handler],
        on_event: EventHandler | None = None,
        name: str,
        max_size: int = DEFAULT_MAX_SIZE,
        default_timeout: float = 30.0,
        expiry_interval: float = 0.1,
    ) -> None:
        self._transport = transport
        self._handlers = handlers
        self._on_event = on_event
        self._name = name
        self._max_size = max_size
        self._default_timeout = default_timeout
        self._expiry_interval = expiry_interval
        self._pending = PendingRequests(name, clock=time.monotonic)
        #: The task reading the link and those answering requests.
        self._handler_tasks: set[asyncio.Task[None]] = set()
        #: Settles when the transport has closed (or reading failed): `run` then returns.
        self._ended: asyncio.Future[None] | None = None
        #: Set while requests wait: an idle link's deadline checker sleeps for nothing.
        self._awaiting_replies = asyncio.Event()
        self._closed = False
        #: The websocket close code the link closed with, once it has.
        self._close_code: int | None = None
        #: The largest frame sent so far, in bytes: the likely cause of a close for size.
        self._largest_sent = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def name(self) -> str:
        return self._name

    async def run(self) -> None:
        """Serve the link until the transport closes, then settle everything in flight.

        On return every pending request has failed with `LinkClosed` and every handler
        task has been cancelled and awaited.
        """
        ended = self._ended = asyncio.get_running_loop().create_future()
        expiry = asyncio.create_task(self._expire_deadlines())
        self._read_on()
        try:
            await ended
        finally:
            self._mark_closed()
            tasks = [expiry, *self._handler_tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _read_on(self) -> None:
        """A task that reads the next frames (and answers the requests among them)."""
        task = asyncio.create_task(self._read())
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _read(self) -> None:
        """Read and dispatch frames; answer each request here, and when an answer has to
        wait, leave this task to it and hand the reading on to a new one.

        Most answers (an exec of a method that returns at once, a ping) never wait: they
        go out with no task started for them (a task per request cost the edge a task and
        a turn of the loop before every answer). One that waits keeps this task, as a
        task of its own would: a module's deadline cancels the task a call runs in, and
        a slow answer holds up nothing else.
        """
        task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                request = await self._dispatch(await self._transport.recv())
            except TransportClosed as exc:
                self._log_close(exc)
                self._close_code = self._close_code or exc.code
                self._end(None)
                return
            except Exception as exc:  # not the peer's doing: `run` raises it
                self._end(exc)
                return
            if request is None:
                continue
            answering = self._answer(request)
            try:
                waiting_on = answering.send(None)
            except StopIteration:
                if task.cancelling():  # the answer cancelled its own task: leave it so
                    break
                continue
            except asyncio.CancelledError:
                if task.cancelling():
                    raise
                continue  # raised by the handler, not a cancellation of this task
            except Exception:
                logger.exception("answering %r from %s failed", request.op, self._name)
                continue
            self._read_on()
            await _Resumed(answering, waiting_on)
            return
        self._read_on()

    def _end(self, error: Exception | None) -> None:
        ended = self._ended
        if ended is None or ended.done():
            return
        if error is None:
            ended.set_result(None)
        else:
            ended.set_exception(error)

    async def request(
        self,
        op: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and return the peer's result.

        Raises `LinkRequestError` (the peer answered with an error), `LinkTimeout` (no
        answer within ``timeout``, default ``default_timeout``), `ContentTooLarge` (the
        request would not fit in one frame; nothing was sent) or `LinkClosed`.
        """
        if self._closed:
            raise LinkClosed(self._name, self._close_code)
        request_id, reply = self._pending.open(
            op, self._default_timeout if timeout is None else timeout
        )
        self._awaiting_replies.set()
        try:
            try:  # noqa: SIM105 - suppress() is three more calls per request
                await self._send(encode_request(request_id, op, args or {}), "request")
            except LinkClosed:
                pass  # the reply has failed with all the others
            return await reply
        finally:
            self._pending.discard(request_id)

    async def send_event(self, event: str, **fields: Any) -> None:
        """Push an event to the peer; raises `LinkClosed` when the link is down.

        An event too large for one frame is dropped with a warning: the link stays up.
        """
        if self._closed:
            raise LinkClosed(self._name, self._close_code)
        try:
            await self._send(encode_event(event, fields), "event")
        except ContentTooLarge as exc:
            logger.warning("event %r to %s not sent: %s", event, self._name, exc.detail)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Fail what is pending now and close the transport; `run` then returns."""
        self._close_code = self._close_code or code
        self._mark_closed()
        await self._transport.close(code, reason)

    def _mark_closed(self) -> None:
        self._closed = True
        self._pending.fail_all(LinkClosed(self._name, self._close_code))

    def _log_close(self, exc: TransportClosed) -> None:
        """A link closed for a frame over the limit says so, with the code and the size."""
        if exc.code in SIZE_CLOSE_CODES:
            logger.error(
                "link with %s closed for size: close code %s (%s); the largest frame sent "
                "was %d bytes, this side's frame limit is %d bytes",
                self._name,
                exc.code,
                exc.reason or "message too big",
                self._largest_sent,
                self._max_size,
            )

    async def _send(self, text: str, kind: str) -> None:
        """Send one frame's text; raises `ContentTooLarge` (nothing sent) or `LinkClosed`."""
        size = frame_size(text)
        if size > self._max_size:
            raise ContentTooLarge(
                f"a {kind} frame of {size} bytes would exceed the link's "
                f"{self._max_size}-byte limit (ENGINE_LINK_MAX_FRAME)",
                size=size,
                limit=self._max_size,
            )
        if size > self._largest_sent:
            self._largest_sent = size
        try:
            await self._transport.send(text)
        except TransportClosed:
            self._mark_closed()
            raise LinkClosed(self._name, self._close_code) from None

    async def _dispatch(self, data: str | bytes) -> Call | Request | None:
        """Settle a response, deliver an event, answer a bad frame; a request is returned."""
        try:
            frame = read(data, max_size=self._max_size)
        except FrameError as exc:
            await self._reject(exc)
            return None
        if isinstance(frame, Reply | Response):
            self._pending.resolve(frame)
        elif isinstance(frame, Call | Request):
            return frame
        elif isinstance(frame, Event):
            await self._deliver(frame)
        else:
            message = f"no {frame.type} frame after handshake"
            await self._notify_error(ErrorCode.UNEXPECTED_FRAME, message)
        return None

    async def _reject(self, error: FrameError) -> None:
        logger.warning("%s sent a bad frame: %s", self._name, error.message)
        if error.code == ErrorCode.TOO_LARGE:
            logger.error(
                "closing the link with %s for size: close code %d; %s",
                self._name,
                CloseCode.TOO_LARGE,
                error.message,
            )
            await self.close(CloseCode.TOO_LARGE, "frame too large")
        elif error.request_id is not None:
            with suppress(LinkClosed):
                await self._send(
                    encode_failure(error.request_id, error.code, error.message), "response"
                )
        else:
            await self._notify_error(error.code, error.message)

    async def _notify_error(self, code: str, message: str) -> None:
        with suppress(LinkClosed):
            await self._send(encode_event("error", {"code": code, "message": message}), "event")

    async def _deliver(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            delivered = self._on_event(event)
            if delivered is not None:
                await delivered
        except Exception:
            logger.exception("handling event %r from %s failed", event.event, self._name)

    async def _answer(self, request: Call | Request) -> None:
        reply = await self._reply(request)
        try:
            await self._send(reply, "response")
        except ContentTooLarge as exc:
            logger.warning("the answer to %r from %s: %s", request.op, self._name, exc.detail)
            message = f"the result of {request.op!r} is too large: {exc.detail}"
            with suppress(LinkClosed):
                await self._send(
                    encode_failure(request.id, ErrorCode.TOO_LARGE, message), "response"
                )
        except LinkClosed:
            pass  # nobody to answer

    async def _reply(self, request: Call | Request) -> str:
        """The response's text: written straight from the result, no model built."""
        handler = self._handlers.get(request.op)
        if handler is None:
            message = f"unknown op {request.op!r}"
            return encode_failure(request.id, ErrorCode.UNKNOWN_OP, message)
        try:
            result = await handler(request.args)
        except BadArgs as exc:
            return encode_failure(request.id, ErrorCode.BAD_ARGS, str(exc))
        except EngineError as exc:
            return encode_failure(request.id, error_code(exc), exc.detail)
        except Exception as exc:  # a bug in the handler: never the peer's fault
            logger.exception("op %r from %s failed", request.op, self._name)
            return encode_failure(request.id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        try:
            return encode_result(request.id, result)
        except PydanticSerializationError as exc:
            message = f"the result of {request.op!r} is not JSON: {exc}"
            return encode_failure(request.id, ErrorCode.BAD_RESULT, message)

    async def _expire_deadlines(self) -> None:
        """Every ``expiry_interval`` while requests wait; a thousand idle links cost nothing."""
        while True:
            await self._awaiting_replies.wait()
            await asyncio.sleep(self._expiry_interval)
            self._pending.expire(time.monotonic())
            if not self._pending:
                self._awaiting_replies.clear()
