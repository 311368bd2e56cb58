"""Answering replica.changes: bounded by count, by size, and aware of compaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import ResyncRequired
from app.link.ops import ReplicaChangesArgs, ReplicaFetchArgs
from app.master.feed import replica_changes, replica_fetch, versions_since
from app.store.sqlite import SqliteStore
from tests.support.stores import opened


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(tmp_path / "master.db") as store:
        yield store


async def test_large_documents_are_cut_into_frames_that_fit(store: SqliteStore) -> None:
    blob = "x" * 1500
    await store.insert_many([(f"mod-{n:03}", "module", {"blob": blob}) for n in range(100)])
    seen: list[str] = []
    since, more = 0, True
    while more:
        answer = await replica_changes(
            store, ReplicaChangesArgs(since=since, limit=1000), max_bytes=10_000
        )
        assert 1 <= len(answer["changes"]) <= 7
        seen += [change["id"] for change in answer["changes"]]
        since, more = answer["last_seq"], answer["more"]
    assert seen == [f"mod-{n:03}" for n in range(100)]


async def test_a_change_no_frame_can_carry_is_skipped_and_named(store: SqliteStore) -> None:
    await store.insert("before", "module", {"n": 1})
    big = await store.insert("big", "module", {"blob": "x" * 5000})
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    await store.insert("deep", "module", {"deep": deep})
    await store.insert("after", "module", {"n": 2})
    answer = await replica_changes(store, ReplicaChangesArgs(since=0), max_bytes=1000)
    assert [change["id"] for change in answer["changes"]] == ["before", "after"]
    assert [(s["id"], s["seq"]) for s in answer["skipped"]] == [
        ("big", big.seq),
        ("deep", big.seq + 1),
    ]
    assert "over the 1000 bytes" in answer["skipped"][0]["reason"]
    assert "levels deep" in answer["skipped"][1]["reason"]
    assert answer["last_seq"] == await store.last_seq() and answer["more"] is False


async def test_a_cut_batch_reports_only_the_skips_before_the_cut(store: SqliteStore) -> None:
    await store.insert("a", "module", {"blob": "x" * 600})
    await store.insert("big", "module", {"blob": "x" * 5000})
    await store.insert("b", "module", {"blob": "x" * 600})
    await store.insert("big2", "module", {"blob": "x" * 5000})
    first = await replica_changes(store, ReplicaChangesArgs(since=0), max_bytes=1000)
    assert [c["id"] for c in first["changes"]] == ["a"]
    assert [s["id"] for s in first["skipped"]] == ["big"] and first["more"] is True
    second = await replica_changes(
        store, ReplicaChangesArgs(since=first["last_seq"]), max_bytes=1000
    )
    assert [c["id"] for c in second["changes"]] == ["b"]
    assert [s["id"] for s in second["skipped"]] == ["big2"] and second["more"] is False


async def test_a_reader_behind_a_purge_must_resync(store: SqliteStore) -> None:
    await store.insert_many([("a", "driver", {}), ("b", "driver", {})])
    reader = await store.last_seq()
    await store.delete("a")
    await store.insert("c", "driver", {})
    await store.purge_tombstones(older_than_seq=await store.last_seq() + 1)
    with pytest.raises(ResyncRequired):
        await replica_changes(store, ReplicaChangesArgs(since=reader - 1), max_bytes=1 << 20)
    fresh = await replica_changes(store, ReplicaChangesArgs(since=0, limit=1), max_bytes=1 << 20)
    rest = await replica_changes(
        store,
        ReplicaChangesArgs(since=fresh["last_seq"], horizon=fresh["horizon"]),
        max_bytes=1 << 20,
    )
    assert [c["id"] for c in fresh["changes"] + rest["changes"]] == ["b", "c"]


async def test_versions_since_names_new_versions_and_deletions(store: SqliteStore) -> None:
    start = await store.last_seq()
    a = await store.insert("a", "module", {})
    await store.insert("b", "module", {})
    await store.delete("b")
    await store.upsert("edge_secret::e", "edge_secret", {"secret": "s"})
    versions, seq = await versions_since(store, start)
    assert versions == {"a": a.version, "b": None}
    assert seq == await store.last_seq()
    assert await versions_since(store, seq) == ({}, seq)


async def test_replica_fetch_never_hands_out_secrets(store: SqliteStore) -> None:
    await store.insert("a", "module", {"name": "Display"})
    await store.upsert("edge_secret::e", "edge_secret", {"secret": "s"})
    answer = await replica_fetch(store, ReplicaFetchArgs(ids=["a", "edge_secret::e", "missing"]))
    assert [doc["id"] for doc in answer["documents"]] == ["a"]
