"""A corrupt replica file is found as the store opens and moved aside; the store starts empty."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from app.store import SqliteStore, open_store
from app.store.sqlite import integrity_problems, move_aside
from tests.support.corruption import corrupt_a_page
from tests.support.stores import opened


async def seeded(path: Path, count: int = 200) -> None:
    """A replica of ``count`` documents, its write-ahead log folded in on close."""
    async with opened(path) as store:
        await store.upsert_many(
            [(f"mod-{n:04d}", "module", {"name": "Display", "n": n}) for n in range(count)]
        )


async def test_a_whole_or_missing_file_has_no_problems(tmp_path: Path) -> None:
    database = tmp_path / "engine.db"
    assert integrity_problems(database) == []
    assert not database.exists(), "checking creates nothing"
    await seeded(database)
    assert integrity_problems(database) == []


async def test_a_corrupt_page_is_a_problem(tmp_path: Path) -> None:
    database = tmp_path / "engine.db"
    await seeded(database, count=2000)
    corrupt_a_page(database, "docs")
    problems = integrity_problems(database)
    assert problems, "the check finds it"
    assert problems != ["ok"]


def test_a_file_that_is_no_database_is_a_problem(tmp_path: Path) -> None:
    database = tmp_path / "engine.db"
    database.write_bytes(b"this is not a SQLite file, just bytes" * 200)
    assert integrity_problems(database) == ["file is not a database"]


async def test_a_corrupt_replica_is_moved_aside_with_its_log_and_the_store_starts_empty(
    tmp_path: Path,
) -> None:
    database = tmp_path / "engine.db"
    await seeded(database, count=2000)
    corrupt_a_page(database, "docs")

    store = open_store(f"sqlite:///{database}", replica=True)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        assert store.set_aside is not None and store.set_aside.problems
        moved = Path(store.set_aside.moved_to)
        assert moved.name.startswith("engine.db.corrupt-") and moved.exists()
        assert (await store.find("module")).total == 0, "an empty replica"
        assert await store.replica_seq() == 0
        await store.upsert("mod-1", "module", {"name": "Display"})  # and a usable one
    finally:
        await store.close()
    assert integrity_problems(database) == []


async def test_a_whole_replica_and_the_masters_store_are_left_as_they_are(
    tmp_path: Path,
) -> None:
    replica, master = tmp_path / "replica.db", tmp_path / "master.db"
    await seeded(replica)
    await seeded(master, count=2000)
    corrupt_a_page(master, "docs")

    for path, is_replica in ((replica, True), (master, False)):
        store = open_store(f"sqlite:///{path}", replica=is_replica)
        assert isinstance(store, SqliteStore)
        await store.open()
        await store.close()
        assert store.set_aside is None, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.db", "replica.db"]


def test_moving_aside_names_the_copy_after_the_time_and_takes_its_log_along(
    tmp_path: Path,
) -> None:
    database = tmp_path / "engine.db"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("CREATE TABLE t (x)")
    (tmp_path / "engine.db-wal").write_bytes(b"log")
    moved = move_aside(database, datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC))
    assert moved == tmp_path / "engine.db.corrupt-20260301T123005Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "engine.db.corrupt-20260301T123005Z",
        "engine.db.corrupt-20260301T123005Z-wal",
    ]
