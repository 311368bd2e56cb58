"""Bounded growth: purge old tombstones and trim each edge's ControlEvent history.

Both jobs run on a schedule (``ENGINE_HOUSEKEEPING_INTERVAL_S``), apart from the
supervisors that write events, so trimming history never stands in the way of a
control decision.

- **Tombstones** older than ``ENGINE_TOMBSTONE_RETENTION_S`` are purged. Each pass
  first marks the store's newest sequence with the time; a later pass purges the
  deletions up to the newest mark older than the retention. An edge away longer than
  that finds the feed compacted and resyncs in full. Stores that cannot purge
  (Couchbase keeps its own tombstones) are left alone.
- **ControlEvents** (master only) keep at most ``ENGINE_CONTROL_EVENTS_MAX`` per edge
  and none older than ``ENGINE_CONTROL_EVENTS_MAX_AGE_S``; the oldest go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from app.services.tasks import BackgroundTasks
from app.store.base import Document, DocumentNotFound, Store

log = logging.getLogger(__name__)

EVENT_TYPE = "control_event"


@runtime_checkable
class PurgingStore(Protocol):
    """A store that can forget deletions by age (the embedded store)."""

    async def mark_sequence(self, at: float) -> int: ...

    async def purge_deleted_before(self, before: float) -> int: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """How long deletions and control history are kept."""

    tombstones_s: float
    events_max: int
    events_max_age_s: float


def events_to_drop(events: list[Document], *, keep: int, oldest_kept: datetime) -> list[str]:
    """Ids of one edge's events past the count or the age limit, oldest first.

    Event ids sort by time (``evt::<edge>::<UTC time>::<random>``); the ``at`` field
    decides the age.
    """
    ordered = sorted(events, key=lambda doc: (str(doc.body.get("at", "")), doc.id))
    cut = max(0, len(ordered) - keep)
    drop = [doc.id for doc in ordered[:cut]]
    for doc in ordered[cut:]:
        if _at(doc) < oldest_kept:
            drop.append(doc.id)
    return drop


def _at(doc: Document) -> datetime:
    try:
        at = datetime.fromisoformat(str(doc.body.get("at")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class Housekeeping:
    """Runs the purge (both roles) and the event trim (master) every ``interval_s``."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        *,
        interval_s: float,
        trim_events: bool,
        tasks: BackgroundTasks,
        on_purged: Callable[[int], None] | None = None,
        on_pruned: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention = retention
        self._interval_s = interval_s
        self._trim_events = trim_events
        self._tasks = tasks
        self._on_purged = on_purged
        self._on_pruned = on_pruned
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = self._tasks.spawn(self._run(), name="housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if not isinstance(self._store, PurgingStore):
            log.info("this store keeps its own tombstones: none are purged here")
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping failed; retried at the next interval")
            await asyncio.sleep(self._interval_s)

    async def run_once(self) -> tuple[int, int]:
        """One pass; returns (tombstones purged, events dropped)."""
        purged = await self.purge_tombstones()
        pruned = await self.trim_events() if self._trim_events else 0
        return purged, pruned

    async def purge_tombstones(self) -> int:
        store = self._store
        if not isinstance(store, PurgingStore):
            return 0
        now = self._clock()
        await store.mark_sequence(now)
        purged = await store.purge_deleted_before(now - self._retention.tombstones_s)
        if purged:
            log.info(
                "purged %d deletion(s) older than %ss (ENGINE_TOMBSTONE_RETENTION_S)",
                purged,
                f"{self._retention.tombstones_s:g}",
            )
            if self._on_purged is not None:
                self._on_purged(purged)
        return purged

    async def trim_events(self) -> int:
        """Drop each edge's events past the count and age limits, oldest first."""
        oldest_kept = datetime.fromtimestamp(self._clock(), UTC) - timedelta(
            seconds=self._retention.events_max_age_s
        )
        by_edge: dict[str, list[Document]] = {}
        for doc in (await self._store.find(EVENT_TYPE)).items:
            by_edge.setdefault(str(doc.body.get("edge_id")), []).append(doc)
        dropped = 0
        for edge_id, events in by_edge.items():
            drop = events_to_drop(events, keep=self._retention.events_max, oldest_kept=oldest_kept)
            for event_id in drop:
                with contextlib.suppress(DocumentNotFound):
                    await self._store.delete(event_id)
                    dropped += 1
            if drop:
                log.info("edge %s: dropped %d old control event(s)", edge_id, len(drop))
        if dropped and self._on_pruned is not None:
            self._on_pruned(dropped)
        return dropped
