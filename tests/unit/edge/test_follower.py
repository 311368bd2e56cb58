"""A replica that cannot take the master's changes retries on its own and says why."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from app.edge.follower import ReplicaFollower, ReplicationFailure, retry_delay
from app.edge.uplink import CurrentLink
from app.link import Event, LinkClosed, LinkConnection
from app.metrics import Metrics
from app.store.base import StoreUnavailable
from tests.support.wait import wait_until


def test_retries_back_off_from_the_first_delay_up_to_the_cap() -> None:
    delays = [retry_delay(n, first_s=0.1, max_s=3.0) for n in range(8)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert retry_delay(10_000, first_s=0.1, max_s=3.0) == 3.0


def metric(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_a_failure_is_reported_with_its_start_and_retries_until_it_recovers() -> None:
    metrics = Metrics()
    failure = ReplicationFailure(metrics)
    assert failure.as_json() is None
    first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC)

    failure.failed("disk full", first)
    failure.failed("disk still full", later)
    failure.failed("disk still full", later)

    assert failure.as_json() == {
        "error": "disk still full",
        "since": first.isoformat(),
        "retries": 2,
    }
    assert metric(metrics, "engine_replication_error") == 1
    assert metric(metrics, "engine_replication_failures_total") == 3
    failure.recovered()
    assert failure.as_json() is None
    assert metric(metrics, "engine_replication_error") == 0


class FullDisk:
    """A replica whose writes fail until ``freed`` (its store on a full disk)."""

    seq = 0
    set_aside = None

    def __init__(self, *, raises: Exception | None = None) -> None:
        self.raises: Exception = raises or StoreUnavailable("engine.db: database or disk is full")
        self.freed = False
        self.attempts = 0

    async def open(self) -> None:
        pass

    async def catch_up(self, link: Any) -> int:
        self.attempts += 1
        if not self.freed:
            raise self.raises
        return 1

    async def updated(self, link: Any, versions: Mapping[str, str | None]) -> list[str]:
        return []


async def following(replica: FullDisk) -> tuple[ReplicaFollower, list[int], asyncio.Task[None]]:
    current = CurrentLink()
    current.link = cast(LinkConnection, object())
    synced: list[int] = []

    async def on_synced() -> None:
        synced.append(replica.attempts)

    follower = ReplicaFollower(
        replica, current, on_synced, ReplicationFailure(Metrics()), retry_max_s=0.2
    )
    return follower, synced, asyncio.create_task(follower.run())


async def test_a_failed_catch_up_is_retried_without_another_change_until_it_succeeds() -> None:
    replica = FullDisk()
    follower, synced, running = await following(replica)
    try:
        follower.on_event(Event(event="replica.changed", seq=7))
        await wait_until(lambda: replica.attempts >= 4, timeout=3, message="retries")
        report = follower.failure.as_json()
        assert report is not None and report["retries"] >= 3
        assert "store cannot take the master's changes" in report["error"]
        assert "database or disk is full" in report["error"]
        assert synced == []

        replica.freed = True  # no further change is announced
        await wait_until(lambda: bool(synced), timeout=3, message="the catch-up")
        assert follower.failure.as_json() is None
        attempts = replica.attempts
        await asyncio.sleep(0.3)
        assert replica.attempts == attempts, "nothing more to retry once caught up"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_link_closing_mid_catch_up_is_no_replication_error() -> None:
    replica = FullDisk(raises=LinkClosed("master"))
    follower, _, running = await following(replica)
    try:
        caught_up = await follower.catch_up(cast(LinkConnection, object()))
        assert not caught_up
        assert follower.failure.as_json() is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
