"""The edge's replica follows the master: a pull after each notice, notices coalesced,
failed pulls retried with backoff and reported until one succeeds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.control.clock import now_utc
from app.edge.replica import Replica
from app.edge.uplink import CurrentLink
from app.link import Event, LinkClosed
from app.link.ops import Requester
from app.metrics import Metrics
from app.services.limits import describe_skipped
from app.store.base import StoreError

log = logging.getLogger(__name__)

#: Seconds before the first retry of a failed catch-up; each further one waits twice as
#: long, up to ``ENGINE_LINK_RETRY_S``.
FIRST_RETRY_S = 0.1


class SkippedChanges:
    """What the master last had to leave out of this replica, in words (the replica's
    ``on_skipped``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.error: str | None = None

    def __call__(self, skipped: Sequence[Mapping[str, Any]]) -> None:
        self._metrics.replication_skipped.inc(len(skipped))
        self.error = f"not replicated: {describe_skipped(skipped)}"


def retry_delay(failures: int, *, first_s: float, max_s: float) -> float:
    """Seconds before the next catch-up after ``failures`` failed ones in a row: doubling
    from ``first_s``, never above ``max_s``."""
    if failures <= 0:
        return 0.0
    return min(max_s, first_s * 2.0 ** min(failures - 1, 32))


class ReplicationFailure:
    """Why this edge's replica cannot catch up with the master, since when, and how many
    times it was retried; all None while the replica keeps up.

    The metrics follow: ``engine_replication_error`` is 1 while it fails, and
    ``engine_replication_failures_total`` counts every failed catch-up.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.error: str | None = None
        self.since: datetime | None = None
        #: Failed catch-ups since the first one (0 after the first failure).
        self.retries = 0
        self.failures = 0

    def failed(self, error: str, at: datetime) -> None:
        if self.failures == 0:
            self.since = at
            self._metrics.replication_error.set(1)
        else:
            self.retries += 1
        self.failures += 1
        self.error = error
        self._metrics.replication_failures.inc()

    def recovered(self) -> None:
        self.error, self.since, self.retries, self.failures = None, None, 0, 0
        self._metrics.replication_error.set(0)

    def as_json(self) -> dict[str, Any] | None:
        if self.error is None or self.since is None:
            return None
        return {"error": self.error, "since": self.since.isoformat(), "retries": self.retries}


class ReplicaFollower:
    """Pulls the master's changes after each ``replica.changed``; ``synced`` after each pull.

    A catch-up that fails (this edge's disk is full, read-only or failing; the master's
    answer did not come) is retried with backoff, up to ``retry_max_s`` apart, whether
    or not the master writes again, and reported in ``failure`` until one succeeds.
    """

    def __init__(
        self,
        replica: Replica,
        current: CurrentLink,
        synced: Callable[[], Awaitable[None]],
        failure: ReplicationFailure,
        *,
        retry_max_s: float,
    ) -> None:
        self.replica = replica
        self.failure = failure
        self._current = current
        self._synced = synced
        self._retry_max_s = retry_max_s
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
                continue  # the next link catches up as it connects
            if not await self.catch_up(link):
                failures = self.failure.failures
                await asyncio.sleep(
                    retry_delay(failures, first_s=FIRST_RETRY_S, max_s=self._retry_max_s)
                )
                self._changed.set()

    async def catch_up(self, link: Requester) -> bool:
        """Bring the replica up to the master's newest change; True once it has.

        A failure is reported in ``failure`` (cleared by the next success), never raised.
        """
        try:
            await self.replica.catch_up(link)
        except LinkClosed:
            return False  # not the replica's fault: the next link catches up
        except Exception as exc:
            self._failed(exc)
            return False
        if self.failure.error is not None:
            log.info(
                "the replica caught up with the master again after %d retries (failing since %s)",
                self.failure.retries,
                self.failure.since.isoformat() if self.failure.since else "?",
            )
            self.failure.recovered()
        await self._synced()
        return True

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            error = f"this edge's store cannot take the master's changes: {exc}"
        else:
            error = f"catching up with the master failed: {type(exc).__name__}: {exc}"
        first = self.failure.error is None
        self.failure.failed(error, now_utc())
        if first:
            log.error("%s; retried with backoff until the replica has caught up", error)
        else:
            log.debug("replica catch-up retry %d failed: %s", self.failure.retries, error)
