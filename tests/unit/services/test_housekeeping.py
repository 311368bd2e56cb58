"""Housekeeping: tombstones purged after the retention, control history kept bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.services.housekeeping import Housekeeping, Retention
from app.services.tasks import BackgroundTasks
from app.store.base import FeedCompacted
from app.store.sqlite import SqliteStore
from tests.support.stores import opened

RETENTION = Retention(tombstones_s=10.0, events_max=3, events_max_age_s=3600.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def housekeeping(store: SqliteStore, clock: Clock, **options: object) -> Housekeeping:
    return Housekeeping(
        store,
        RETENTION,
        interval_s=60,
        trim_events=True,
        tasks=BackgroundTasks(),
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


async def deleted_ids(store: SqliteStore) -> set[str]:
    batch = await store.changes_since(0, limit=1000)
    return {change.id for change in batch.changes if change.deleted}


async def test_deletions_are_purged_only_once_older_than_the_retention(
    store: SqliteStore,
) -> None:
    clock = Clock(1000.0)
    purged: list[int] = []
    job = housekeeping(store, clock, on_purged=purged.append)
    await store.insert_many([("a", "driver", {}), ("b", "driver", {}), ("c", "driver", {})])
    reader = await store.last_seq()
    await store.delete("a")
    assert await job.run_once() == (0, 0)  # marks 1000: "a" deleted by then

    clock.now = 1006.0
    await store.delete("b")
    assert (await job.run_once())[0] == 0  # marks 1006; nothing is 10 s old yet
    assert await deleted_ids(store) == {"a", "b"}

    clock.now = 1011.0
    assert (await job.run_once())[0] == 1  # the 1000 mark is old enough: "a" goes
    assert await deleted_ids(store) == {"b"}
    assert purged == [1]
    with pytest.raises(FeedCompacted):
        await store.changes_since(reader)  # a reader from before must resync

    clock.now = 1017.0
    assert (await job.run_once())[0] == 1  # now the 1006 mark is old enough: "b" goes
    assert await deleted_ids(store) == set()
    assert (await store.get("c")).id == "c"


async def test_marks_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    async with opened(tmp_path / "engine.db") as store:
        await store.insert("a", "driver", {})
        await store.delete("a")
        await housekeeping(store, clock).run_once()

    async with opened(tmp_path / "engine.db") as reopened:
        clock.now = 1011.0
        assert (await housekeeping(reopened, clock).run_once())[0] == 1


async def event(store: SqliteStore, edge_id: str, at: datetime, n: int) -> str:
    event_id = f"evt::{edge_id}::{at.strftime('%Y%m%dT%H%M%S.%f')}::{n:06x}"
    await store.insert(
        event_id, "control_event", {"edge_id": edge_id, "at": at.isoformat(), "kind": "x"}
    )
    return event_id


async def test_each_edge_keeps_its_newest_events_within_count_and_age(
    store: SqliteStore,
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = Clock(now.timestamp())
    pruned: list[int] = []
    job = housekeeping(store, clock, on_pruned=pruned.append)
    busy = [await event(store, "edge-1", now - timedelta(minutes=n), n) for n in range(6)]
    stale = await event(store, "edge-2", now - timedelta(hours=2), 0)
    recent = await event(store, "edge-2", now - timedelta(minutes=1), 1)

    assert await job.run_once() == (0, 4)

    kept = {doc.id for doc in (await store.find("control_event")).items}
    assert kept == {*busy[:3], recent}, "the three newest of edge-1, the recent one of edge-2"
    assert stale not in kept
    assert pruned == [4]
    assert await job.run_once() == (0, 0)


async def test_an_edge_role_does_not_trim_the_masters_history(store: SqliteStore) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(5):
        await event(store, "edge-1", now - timedelta(days=n * 100), n)
    job = Housekeeping(
        store,
        RETENTION,
        interval_s=60,
        trim_events=False,
        tasks=BackgroundTasks(),
        clock=Clock(now.timestamp()),
    )
    assert await job.run_once() == (0, 0)
    assert (await store.find("control_event")).total == 5
