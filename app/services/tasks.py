"""Background tasks that cannot die unnoticed.

Every long-lived task of either role (boot, the uplink, the replica follower, the
watchers, housekeeping, the supervisors' timers and retries) is started through one
:class:`BackgroundTasks`. A task that ends with an exception is logged with its
traceback and kept as a :class:`DeadTask`; ``/api/ready`` answers 503 naming it and
``engine_tasks_dead`` counts it, so a server that lost part of itself says so instead
of looking healthy (README, "Storage faults and dead tasks"). A task meant to run
until shutdown that returns is dead too: nothing would do its job any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.control.clock import now_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadTask:
    """A background task that ended when it should not have, and why."""

    name: str
    error: str
    at: datetime

    def as_json(self) -> dict[str, str]:
        return {"task": self.name, "error": self.error, "at": self.at.isoformat()}


def describe_dead(dead: list[DeadTask]) -> str:
    """One line naming every dead task (``/api/ready``'s detail)."""
    named = "; ".join(f"{task.name!r} ({task.error})" for task in dead)
    noun = "task" if len(dead) == 1 else "tasks"
    return f"background {noun} died: {named}; see the log for the traceback"


class BackgroundTasks:
    """Starts background tasks and watches each one end.

    ``on_death`` hears the number of dead tasks after each death (the metric follows).
    Tasks cancelled, and tasks ending while :meth:`stop` runs, are not deaths.
    """

    def __init__(self, on_death: Callable[[int], None] | None = None) -> None:
        self._on_death = on_death
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False
        #: Tasks that died, oldest first; never cleared (the process needs a restart).
        self.dead: list[DeadTask] = []

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], *, name: str, forever: bool = True
    ) -> asyncio.Task[Any]:
        """Run ``coroutine`` as the task ``name``; ``forever``: returning is a death too."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._running.add(task)
        task.add_done_callback(lambda done: self._ended(done, forever=forever))
        return task

    async def stop(self) -> None:
        """Cancel every task still running and wait for them."""
        self._stopping = True
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _ended(self, task: asyncio.Task[Any], *, forever: bool) -> None:
        self._running.discard(task)
        if task.cancelled() or self._stopping:
            return
        error = task.exception()
        if error is None and not forever:
            return
        name = task.get_name()
        if error is None:
            why = "it returned, but it should run until shutdown"
            log.error("background task %r ended: %s", name, why)
        else:
            why = f"{type(error).__name__}: {error}"
            log.error("background task %r died", name, exc_info=error)
        self.dead.append(DeadTask(name, why, now_utc()))
        if self._on_death is not None:
            self._on_death(len(self.dead))
