"""One timer for many deadlines: the timeouts of a module's calls.

A timer of its own for every call (``loop.call_later``, then its ``cancel``) cost 2.4 µs
of the 5 µs the runtime spent on an exec (bench/README.md §8), and nearly every call
returns long before its deadline. Here the items wait in insertion order, one queue per
timeout value: the loop's clock only moves on, so that is deadline order. One timer, set
for the earliest deadline, hands over whatever is due when it fires and sets itself for
the next; an item removed before its deadline costs two dictionary operations.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

#: A timer may fire up to this much before its time (libuv counts in milliseconds):
#: what is due within it is due now, as it would be for the loop's own timers.
RESOLUTION_S = 1e-3


class Deadlines(Generic[T]):
    """Items, each with a deadline; ``on_due(item)`` runs at it unless the item went first."""

    def __init__(self, on_due: Callable[[T], None]) -> None:
        self._on_due = on_due
        #: timeout → item → deadline, each queue in deadline order.
        self._queues: dict[float, dict[T, float]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        #: The loop the deadlines are on.
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def add(self, item: T, timeout: float) -> None:
        """Hand ``item`` to ``on_due`` ``timeout`` seconds from now, unless removed first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # what another loop held went with it
            self._loop, self._queues, self._timer, self._timer_at = loop, {}, None, math.inf
        deadline = loop.time() + timeout
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = {}
        queue[item] = deadline
        if deadline < self._timer_at:
            self._set_timer(loop, deadline)

    def remove(self, item: T, timeout: float) -> None:
        """Forget ``item`` (added with ``timeout``); the timer stays and finds nothing."""
        queue = self._queues.get(timeout)
        if queue is not None:
            queue.pop(item, None)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._fire, loop)
        self._timer_at = at

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time() + RESOLUTION_S
        due: list[T] = []
        earliest = math.inf
        for timeout, queue in list(self._queues.items()):
            while queue:
                item, deadline = next(iter(queue.items()))
                if deadline > now:
                    earliest = min(earliest, deadline)
                    break
                del queue[item]
                due.append(item)
            if not queue:
                del self._queues[timeout]
        if earliest < math.inf:
            self._set_timer(loop, earliest)
        for item in due:
            self._on_due(item)
