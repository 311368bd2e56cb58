"""Restore windows: an APScheduler CRON job per edge, in the edge's time zone."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.control.windows import RestoreWindow

log = logging.getLogger(__name__)


class RestoreWindows:
    """Calls ``opened(edge_id)`` each time an edge's restore window opens."""

    def __init__(self, opened: Callable[[str], Awaitable[None]]) -> None:
        self._opened = opened
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._windows: dict[str, RestoreWindow] = {}

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def schedule(self, edge_id: str, window: RestoreWindow | None) -> None:
        """(Re)schedule an edge's window job; ``None`` removes it."""
        job_id = f"restore-window:{edge_id}"
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)
        self._windows.pop(edge_id, None)
        if window is None:
            return
        self._windows[edge_id] = window
        self._scheduler.add_job(
            self._opened,
            trigger=window.trigger,
            args=[edge_id],
            id=job_id,
            misfire_grace_time=max(1, int(window.window_length)),
            coalesce=True,
            max_instances=1,
        )
        log.info("edge %s: restore window %s", edge_id, window)
