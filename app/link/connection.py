"""The link over a live websocket: the one place the protocol meets asyncio I/O.

A :class:`LinkConnection` carries requests both ways over one `FrameTransport`, many in
flight at once. Three jobs run while it is up (:meth:`LinkConnection.run`):

- **reading**: one task reads the frames in order. A response settles the request it
  answers (the pending-request table, ``app.link.pending``); an event goes to
  ``on_event``; a bad frame gets an error reply; a request is answered.
- **answering**: a request is answered in the reading task itself, as far as its
  answer can go without waiting (``app.link.eager``): most answers never wait, and
  they go out with no task started for them. An answer that has to wait keeps the
  task it started in, and a new task takes the reading over, so a slow answer holds up
  nothing else. Answers may therefore go out in any order.
- **deadlines**: while requests this side sent are waiting, a checker fails those past
  their deadline every ``expiry_interval``; an idle link's checker sleeps.

Sending (:meth:`LinkConnection.request`, :meth:`LinkConnection.send_event`) happens in
the caller's task. The ops themselves are declared in ``app.link.ops``; this module
knows them only by name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any

from app.errors import ContentTooLarge
from app.link import eager
from app.link.answers import answer
from app.link.codec import (
    DEFAULT_MAX_SIZE,
    Call,
    FrameError,
    Reply,
    encode_event,
    encode_failure,
    encode_request,
    frame_size,
    read,
)
from app.link.codes import CloseCode, ErrorCode
from app.link.messages import Event, Request, Response
from app.link.ops import Handler
from app.link.pending import LinkClosed, PendingRequests
from app.link.transports import SIZE_CLOSE_CODES, FrameTransport, TransportClosed

logger = logging.getLogger(__name__)

EventHandler = Callable[[Event], Awaitable[None] | None]


class LinkConnection:
    """Requests, responses and events over one transport, many in flight at once.

    Start it after the handshake and keep `run` running while it is used. ``name``
    names the peer in errors ("edge 'edge-1'", "master"); ``handlers`` answer the
    peer's requests by op name (``app.link.ops.op_table``). Events are handed to
    ``on_event`` in the order they arrive, one at a time, in the reading task: keep it
    quick.
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
        #: The task reading the link and those finishing answers that had to wait.
        self._tasks: set[asyncio.Task[None]] = set()
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

        On return every pending request has failed with `LinkClosed` and every task
        of the link has been cancelled and awaited. Raises what reading raised when it
        failed for a reason of this side's (never for anything the peer sent).
        """
        ended = self._ended = asyncio.get_running_loop().create_future()
        deadlines = asyncio.create_task(self._check_deadlines())
        self._start_reading()
        try:
            await ended
        finally:
            self._mark_closed()
            tasks = [deadlines, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- sending ---------------------------------------------------------------------

    async def request(
        self,
        op: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and return the peer's result (the engine's own ops are sent
        through their declarations: ``app.link.ops``).

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

    # --- reading and answering -------------------------------------------------------

    def _start_reading(self) -> None:
        """A new task that reads the link on (and answers the requests it reads)."""
        task = asyncio.create_task(self._read_and_answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_and_answer(self) -> None:
        """Read frames and answer each request in this task, until an answer has to wait:
        then this task keeps that answer, and a new one reads on.

        An answer that waits keeps this task because the task is the answer's: a
        module's deadline interrupts a call by cancelling the task the call runs in.
        """
        reader = asyncio.current_task()
        assert reader is not None
        while (request := await self._next_request()) is not None:
            try:
                rest = eager.start(self._answer(request))
            except asyncio.CancelledError:
                if reader.cancelling():
                    raise  # this task is being cancelled (the link is closing)
                continue  # the handler raised it of its own: there is no answer
            except Exception:
                logger.exception("answering %r from %s failed", request.op, self._name)
                continue
            if rest is not None:
                self._start_reading()
                await rest
                return
            if reader.cancelling():
                # The answer cancelled the task it ran in and finished before that
                # took effect: the cancellation is the answer's, not the reading's,
                # so this task ends with it and a new one reads on.
                self._start_reading()
                return

    async def _next_request(self) -> Call | Request | None:
        """The next request the peer sent, once every frame before it is handled: a
        response settles the request it answers, an event is delivered, a bad frame is
        answered. None when the link has ended (and `run` has been told why)."""
        while True:
            try:
                try:
                    frame = read(await self._transport.recv(), max_size=self._max_size)
                except FrameError as exc:
                    await self._reject(exc)
                    continue
                if isinstance(frame, Call | Request):
                    return frame
                if isinstance(frame, Reply | Response):
                    self._pending.resolve(frame)
                elif isinstance(frame, Event):
                    await self._deliver(frame)
                else:
                    message = f"no {frame.type} frame after handshake"
                    await self._notify_error(ErrorCode.UNEXPECTED_FRAME, message)
            except TransportClosed as exc:
                self._log_close(exc)
                self._close_code = self._close_code or exc.code
                self._end(None)
                return None
            except Exception as exc:  # not the peer's doing: `run` raises it
                self._end(exc)
                return None

    async def _answer(self, request: Call | Request) -> None:
        """Answer one request; an answer too large for a frame is replaced by an error."""
        reply = await answer(self._handlers, request, peer=self._name)
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

    async def _reject(self, error: FrameError) -> None:
        """A bad frame: answered when it was a request, else reported in an ``error``
        event; a frame over the size limit closes the link (its sender is out of step)."""
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

    # --- deadlines and the end ---------------------------------------------------------

    async def _check_deadlines(self) -> None:
        """Fail this side's requests past their deadline, every ``expiry_interval``
        while any wait; a thousand idle links cost nothing."""
        while True:
            await self._awaiting_replies.wait()
            await asyncio.sleep(self._expiry_interval)
            self._pending.expire(time.monotonic())
            if not self._pending:
                self._awaiting_replies.clear()

    def _end(self, error: Exception | None) -> None:
        """Let `run` return (or raise ``error``): the link has ended."""
        ended = self._ended
        if ended is None or ended.done():
            return
        if error is None:
            ended.set_result(None)
        else:
            ended.set_exception(error)

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
