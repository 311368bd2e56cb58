"""The table of requests sent over the link and still waiting for their response.

The table is pure bookkeeping: it hands out ids and futures and settles them, but never
sleeps or schedules; the connection decides when deadlines are checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

from app.errors import EngineError, GatewayTimeout, Unavailable
from app.link.codec import Reply
from app.link.codes import ErrorCode, domain_code
from app.link.messages import Response


class LinkRequestError(EngineError):
    """The peer answered a request with an error; ``code`` is the peer's (an
    :class:`ErrorCode`, or a string a newer peer sent). What it means to an HTTP client
    is decided by the routers (:func:`app.routers.problems.status_of`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.code = code


class LinkTimeout(GatewayTimeout):
    """The peer did not answer a request within its timeout."""


class LinkClosed(Unavailable):
    """The link is down; ``peer`` names the other side, e.g. ``"edge 'edge-1'"``, and
    ``close_code`` is the websocket close code when the link closed with one."""

    def __init__(self, peer: str, close_code: int | None = None) -> None:
        super().__init__(f"{peer} is not connected")
        self.peer = peer
        self.close_code = close_code


def error_code(exc: EngineError) -> str:
    """The wire code for a domain error; a peer's error passes on the peer's code."""
    if isinstance(exc, LinkRequestError):
        return exc.code
    if isinstance(exc, LinkClosed):
        return ErrorCode.LINK_CLOSED
    if isinstance(exc, LinkTimeout):
        return ErrorCode.LINK_TIMEOUT
    return domain_code(exc)


@dataclass(slots=True)
class _Waiting:
    op: str
    timeout: float
    deadline: float
    reply: asyncio.Future[Any]


class PendingRequests:
    """Outgoing requests by id, each with a future for its result and a deadline."""

    def __init__(self, peer: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._peer = peer
        self._clock = clock
        self._ids = count(1)
        self._waiting: dict[int, _Waiting] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, op: str, timeout: float) -> tuple[int, asyncio.Future[Any]]:
        """Allocate the next id for a request; its future settles with the response."""
        request_id = next(self._ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = _Waiting(op, timeout, self._clock() + timeout, reply)
        return request_id, reply

    def resolve(self, response: Response | Reply) -> bool:
        """Settle the request the response answers; False when nobody waits for it."""
        waiting = self._waiting.pop(response.id, None)
        if waiting is None or waiting.reply.done():
            return False
        if response.error is None:
            waiting.reply.set_result(response.result)
        else:
            waiting.reply.set_exception(
                LinkRequestError(response.error.code, response.error.message)
            )
        return True

    def discard(self, request_id: int) -> None:
        """Forget a request whose caller stopped waiting (cancelled, or already settled)."""
        self._waiting.pop(request_id, None)

    def expire(self, now: float) -> list[int]:
        """Fail every request whose deadline has passed with `LinkTimeout`; their ids."""
        expired = [rid for rid, waiting in self._waiting.items() if waiting.deadline <= now]
        for request_id in expired:
            waiting = self._waiting.pop(request_id)
            if not waiting.reply.done():
                waiting.reply.set_exception(
                    LinkTimeout(
                        f"{self._peer} did not answer {waiting.op!r} within {waiting.timeout:g} s"
                    )
                )
        return expired

    def fail_all(self, exc: BaseException) -> None:
        """Fail every waiting request at once (the link dropped)."""
        waiting, self._waiting = self._waiting, {}
        for entry in waiting.values():
            if not entry.reply.done():
                entry.reply.set_exception(exc)
