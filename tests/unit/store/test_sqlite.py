"""What the SQLite store does beyond the shared contract (tests/contract)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import (
    Change,
    DocumentNotFound,
    FeedCompacted,
    SqliteStore,
    StoreUnavailable,
)
from tests.support.stores import opened

TIMEOUT_S = 5.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "engine.db"


# --- files and URLs -------------------------------------------------------------------


async def test_open_creates_the_file_and_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "engine.db"
    async with opened(path) as store:
        await store.insert("x", "driver", {})
    assert path.is_file()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/engine.db", Path("data/engine.db")),
        ("sqlite:///./data/engine.db", Path("data/engine.db")),
        ("sqlite:////var/lib/engine.db", Path("/var/lib/engine.db")),
    ],
)
def test_from_url_reads_relative_and_absolute_paths(url: str, path: Path) -> None:
    assert SqliteStore.from_url(url).path == path


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://host/engine.db", "file:///engine.db"])
def test_from_url_refuses_what_is_not_a_sqlite_path(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH"):
        SqliteStore.from_url(url)


async def test_documents_and_sequences_survive_a_reopen(db_path: Path) -> None:
    async with opened(db_path) as store:
        doc = await store.insert("a", "module", {"driver_id": "d"})
    async with opened(db_path) as store:
        assert await store.get("a") == doc
        assert await store.last_seq() == doc.seq
        assert (await store.find("module", where={"driver_id": "d"})).total == 1
        assert (await store.insert("b", "driver", {})).seq == doc.seq + 1


async def test_operations_need_an_open_store(db_path: Path) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get("a")
    with pytest.raises(StoreUnavailable, match="not open"):
        store.subscribe()
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.insert("a", "driver", {})


async def test_a_database_of_an_unknown_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        await SqliteStore(db_path).open()


# --- the feed -------------------------------------------------------------------------


async def test_purged_tombstones_make_readers_behind_them_resync(store: SqliteStore) -> None:
    await store.insert_many([(name, "driver", {}) for name in "abc"])
    await store.delete("a")
    reader_before_delete = await store.last_seq() - 1
    await store.delete("b")
    newest_tombstone = await store.last_seq()
    await store.insert("d", "driver", {})

    assert await store.purge_tombstones(older_than_seq=newest_tombstone + 1) == 2

    with pytest.raises(FeedCompacted) as raised:
        await store.changes_since(reader_before_delete)
    assert (raised.value.since, raised.value.oldest) == (reader_before_delete, newest_tombstone)
    caught_up = await store.changes_since(newest_tombstone)
    assert [change.id for change in caught_up.changes] == ["d"]
    from_nothing = await store.changes_since(0)
    assert [change.id for change in from_nothing.changes] == ["c", "d"]


async def test_a_resync_after_a_purge_reads_on_in_batches(store: SqliteStore) -> None:
    await store.insert_many([(f"doc-{n:02}", "driver", {}) for n in range(10)])
    await store.delete("doc-00")
    await store.purge_tombstones(older_than_seq=await store.last_seq() + 1)

    first = await store.changes_since(0, limit=3)
    assert first.more
    assert first.horizon == await store.last_seq()
    seen = [change.id for change in first.changes]
    batch = first
    while batch.more:
        batch = await store.changes_since(batch.last_seq, limit=3, horizon=first.horizon)
        seen += [change.id for change in batch.changes]
    assert seen == [f"doc-{n:02}" for n in range(1, 10)]

    # A purge during the resync is noticed: the reader must start again.
    await store.delete("doc-05")
    await store.purge_tombstones(older_than_seq=await store.last_seq() + 1)
    with pytest.raises(FeedCompacted):
        await store.changes_since(first.last_seq, limit=3, horizon=first.horizon)


async def test_purging_keeps_live_documents_and_newer_tombstones(store: SqliteStore) -> None:
    await store.insert_many([(name, "driver", {}) for name in "ab"])
    await store.delete("a")
    cutoff = await store.last_seq()
    await store.delete("b")
    assert await store.purge_tombstones(older_than_seq=cutoff) == 0
    assert await store.purge_tombstones(older_than_seq=cutoff + 1) == 1
    [tombstone] = (await store.changes_since(cutoff)).changes
    assert (tombstone.id, tombstone.deleted) == ("b", True)


async def test_sequences_are_never_reused_after_a_purge(db_path: Path) -> None:
    async with opened(db_path) as store:
        await store.insert("a", "driver", {})
        await store.delete("a")
        deleted_at = await store.last_seq()
        await store.purge_tombstones(older_than_seq=deleted_at + 1)
    async with opened(db_path) as store:
        assert (await store.insert("b", "driver", {})).seq > deleted_at


async def test_a_reader_ahead_of_the_feed_must_resync(store: SqliteStore) -> None:
    await store.insert("a", "driver", {})
    with pytest.raises(FeedCompacted):
        await store.changes_since(await store.last_seq() + 1)


# --- the replica side -----------------------------------------------------------------


def _change(seq: int, doc_id: str, version: str) -> Change:
    return Change(seq=seq, id=doc_id, type="driver", version=version, deleted=False, body={})


async def test_local_writes_and_replicated_ones_share_the_local_feed(
    store: SqliteStore,
) -> None:
    local = await store.insert("local", "driver", {})
    await store.apply_changes([_change(local.seq, "remote", "v1")], source_seq=local.seq)
    remote = await store.get("remote")
    assert (remote.version, remote.seq) == ("v1", local.seq + 1), "its own local sequence"
    await store.apply_changes([_change(50, "local", "v50")], source_seq=50)
    assert (await store.get("local")).version == "v50", "the master's copy wins"
    changes = (await store.changes_since(local.seq)).changes
    assert [(c.id, c.version) for c in changes] == [("remote", "v1"), ("local", "v50")]


async def test_the_replica_sequence_never_moves_back(store: SqliteStore) -> None:
    await store.apply_changes([], source_seq=20)
    await store.apply_changes([], source_seq=15)
    assert await store.replica_seq() == 20


async def test_reset_replica_makes_readers_of_the_local_feed_resync(
    store: SqliteStore,
) -> None:
    await store.apply_changes([_change(3, "a", "v3")], source_seq=3)
    reader = await store.last_seq()
    updates = store.subscribe()
    assert await asyncio.wait_for(anext(updates), TIMEOUT_S) == reader
    await store.reset_replica()
    assert await asyncio.wait_for(anext(updates), TIMEOUT_S) > reader
    with pytest.raises(FeedCompacted):
        await store.changes_since(reader)
    assert (await store.changes_since(0)).changes == []


# --- robustness -----------------------------------------------------------------------


async def test_a_cancelled_write_is_all_or_nothing_and_the_store_stays_usable(
    store: SqliteStore,
) -> None:
    for attempt in range(15):
        ids = [f"{attempt}-{n}" for n in range(50)]
        writing = asyncio.create_task(store.insert_many([(i, "driver", {}) for i in ids]))
        for _ in range(attempt):
            await asyncio.sleep(0)
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        assert len(await store.get_many(ids)) in (0, len(ids))
        await store.upsert(f"after-{attempt}", "driver", {})
    assert (await store.changes_since(0, limit=10_000)).last_seq == await store.last_seq()


async def test_finding_fifty_thousand_modules_stays_within_a_generous_budget(
    store: SqliteStore,
) -> None:
    await store.insert_many(
        [
            (f"mod-{n:05d}", "module", {"driver_id": f"drv-{n % 10}", "name": "Display"})
            for n in range(50_000)
        ]
    )
    started = time.perf_counter()
    page = await store.find("module")
    elapsed = time.perf_counter() - started
    assert (page.total, len(page.items), page.next_after) == (50_000, 50_000, None)
    # Ten times what it takes on a loaded machine: it catches work growing out of bounds
    # (quadratic, say), not a slow machine. Speed is the benchmarks' business.
    assert elapsed < 10.0, f"find took {elapsed:.2f}s"


# --- an unwritable file ---------------------------------------------------------------


def _chattr(flag: str, paths: tuple[Path, ...]) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("running as root, where only chattr +i makes a file unwritable: no chattr")
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0 and flag == "+i":
        pytest.skip(f"running as root, where only chattr +i makes a file unwritable: {done.stderr}")
    done.check_returncode()


@contextlib.contextmanager
def unwritable(*paths: Path) -> Iterator[None]:
    """Make files unwritable: chmod for a user, the immutable flag for root."""
    if os.geteuid() == 0:
        _chattr("+i", paths)
        try:
            yield
        finally:
            _chattr("-i", paths)
        return
    modes = [path.stat().st_mode for path in paths]
    for path in paths:
        path.chmod(0o444)
    try:
        yield
    finally:
        for path, mode in zip(paths, modes, strict=True):
            path.chmod(mode)


async def test_an_unwritable_file_fails_writes_cleanly_and_recovers(db_path: Path) -> None:
    async with opened(db_path) as store:
        doc = await store.insert("a", "driver", {"n": 1})
    store = SqliteStore(db_path)
    try:
        with unwritable(db_path):
            # The file is held with an exclusive lock (no memory-mapped -shm, see
            # _prepare), which an unwritable file cannot give: opening fails, clearly.
            with pytest.raises(StoreUnavailable, match=r"I/O error|readonly"):
                await store.open()
        await store.open()
        assert await store.get("a") == doc
        assert await store.get_many(["b", "c"]) == {}, "nothing half-written"
        assert await store.last_seq() == doc.seq
        assert (await store.replace("a", {"n": 2})).body == {"n": 2}
    finally:
        await store.close()


async def test_a_file_made_unwritable_while_open_fails_writes_and_recovers(
    store: SqliteStore,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("a user cannot make a file SQLite already holds open unwritable (root: chattr)")
    doc = await store.insert("a", "driver", {"n": 1})
    wal = store.path.with_name(store.path.name + "-wal")
    with unwritable(store.path, wal):
        with pytest.raises(StoreUnavailable, match="I/O error"):
            await store.insert("b", "driver", {})
    with pytest.raises(DocumentNotFound):
        await store.get("b")
    assert await store.get("a") == doc
    assert (await store.insert("b", "driver", {})).seq == doc.seq + 1
