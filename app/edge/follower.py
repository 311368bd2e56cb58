"""The edge's replica follows the master: a pull after each notice, notices coalesced."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from app.edge.replica import Replica
from app.edge.uplink import CurrentLink
from app.link import Event
from app.metrics import Metrics
from app.services.limits import describe_skipped

log = logging.getLogger(__name__)


class SkippedChanges:
    """What the master last had to leave out of this replica, in words (the replica's
    ``on_skipped``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.error: str | None = None

    def __call__(self, skipped: Sequence[Mapping[str, Any]]) -> None:
        self._metrics.replication_skipped.inc(len(skipped))
        self.error = f"not replicated: {describe_skipped(skipped)}"


class ReplicaFollower:
    """Pulls the master's changes after each ``replica.changed``; ``synced`` after each pull."""

    def __init__(
        self, replica: Replica, current: CurrentLink, synced: Callable[[], Awaitable[None]]
    ) -> None:
        self.replica = replica
        self._current = current
        self._synced = synced
        self._changed = asyncio.Event()

    def on_event(self, event: Event) -> None:
        # Never pull from inside the link's reader: the answers would queue behind us.
        if event.event == "replica.changed":
            self._changed.set()

    def retry(self) -> None:
        """Pull again in the background (a catch-up on connect failed)."""
        self._changed.set()

    @property
    def retrying(self) -> bool:
        return self._changed.is_set()

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            link = self._current.link
            if link is None:
                continue
            try:
                await self.replica.catch_up(link)
            except Exception as exc:
                log.warning("replica catch-up failed: %s", exc)
                continue
            await self._synced()
