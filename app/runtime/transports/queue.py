"""One exchange at a time with a device that answers its commands in order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.runtime.transports.errors import RequestTimeout

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Exchange:
    """The request currently waiting for its reply."""

    reply: asyncio.Future[bytes]
    accept: Callable[[bytes], bool] | None

    def wants(self, frame: bytes) -> bool:
        return not self.reply.done() and (self.accept is None or self.accept(frame))

    def settle(self) -> None:
        """Leave the reply future finished and read, whatever ended the exchange.

        ``fail_all`` may have failed it while ``send()`` was still running and then
        ``send()`` raised first; reading the failure keeps asyncio from reporting it
        as never retrieved.
        """
        if not self.reply.done():
            self.reply.cancel()
        elif not self.reply.cancelled():
            self.reply.exception()


class RequestQueue:
    """Lets requests talk to the device one at a time, in arrival order.

    Each request sends its command, then takes the next frame passed to
    :meth:`resolve` as its reply. Frames that arrive while no request is waiting (or
    that the waiting request does not ``accept``) go to ``on_unsolicited``: devices
    also report changes on their own. A reply that arrives after its request timed
    out is unsolicited too, unless the next request is already waiting and accepts
    it, so drivers whose devices echo the command should pass ``accept``.
    """

    def __init__(
        self, timeout: float = 5.0, *, on_unsolicited: Callable[[bytes], None] | None = None
    ) -> None:
        if timeout <= 0:
            raise ValueError("the request timeout must be positive")
        self._timeout = timeout
        self._on_unsolicited = on_unsolicited
        self._busy = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._in_flight: _Exchange | None = None

    async def request(
        self,
        send: Callable[[], Awaitable[None]],
        *,
        timeout: float | None = None,
        accept: Callable[[bytes], bool] | None = None,
    ) -> bytes:
        """Wait for our turn, call ``send()`` and return the reply.

        Raises :class:`RequestTimeout` when ``send()`` and the reply together take
        longer than ``timeout`` (the queue's default when None).
        """
        await self._take_turn()
        try:
            return await self._exchange(send, self._timeout if timeout is None else timeout, accept)
        finally:
            self._pass_turn()

    def resolve(self, frame: bytes) -> None:
        """Deliver a frame received from the device."""
        exchange = self._in_flight
        if exchange is not None and exchange.wants(frame):
            exchange.reply.set_result(frame)
        elif self._on_unsolicited is not None:
            self._on_unsolicited(frame)
        else:
            logger.debug("dropped an unsolicited frame: %r", frame)

    def fail_all(self, exc: Exception) -> None:
        """Fail the request in flight and every request waiting its turn with ``exc``."""
        if self._in_flight is not None and not self._in_flight.reply.done():
            self._in_flight.reply.set_exception(exc)
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_exception(exc)

    async def _exchange(
        self,
        send: Callable[[], Awaitable[None]],
        seconds: float,
        accept: Callable[[bytes], bool] | None,
    ) -> bytes:
        exchange = _Exchange(asyncio.get_running_loop().create_future(), accept)
        self._in_flight = exchange
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await send()
                return await exchange.reply
        except TimeoutError as exc:
            if deadline.expired():
                raise RequestTimeout(f"no reply within {seconds:g} s") from exc
            raise
        finally:
            self._in_flight = None
            exchange.settle()

    async def _take_turn(self) -> None:
        if not self._busy:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._pass_turn()  # the turn came just as the caller was cancelled
            raise

    def _pass_turn(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False
