"""Answering replica.changes: bounded by count, by size, and aware of compaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from app.errors import ResyncRequired
from app.link.ops import ReplicaChangesArgs
from app.master.feed import (
    EncodedAnswer,
    SharedFeed,
    changed_types,
    replica_changes,
    replica_fetch,
    versions_since,
)
from app.store.base import ChangeBatch, EncodedChangeBatch, Store
from app.store.sqlite import SqliteStore
from tests.support.stores import opened_as


def asking(since: int = 0, limit: int | None = None, horizon: int = 0) -> ReplicaChangesArgs:
    return {"since": since, "limit": limit, "horizon": horizon}


async def test_large_documents_are_cut_into_frames_that_fit(store: SqliteStore) -> None:
    blob = "x" * 1500
    await store.insert_many([(f"mod-{n:03}", "module", {"blob": blob}) for n in range(100)])
    seen: list[str] = []
    since, more = 0, True
    while more:
        answer = await replica_changes(store, asking(since=since, limit=1000), max_bytes=10_000)
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
    answer = await replica_changes(store, asking(since=0), max_bytes=1000)
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
    first = await replica_changes(store, asking(since=0), max_bytes=1000)
    assert [c["id"] for c in first["changes"]] == ["a"]
    assert [s["id"] for s in first["skipped"]] == ["big"] and first["more"] is True
    second = await replica_changes(store, asking(since=first["last_seq"]), max_bytes=1000)
    assert [c["id"] for c in second["changes"]] == ["b"]
    assert [s["id"] for s in second["skipped"]] == ["big2"] and second["more"] is False


async def test_a_reader_behind_a_purge_must_resync(store: SqliteStore) -> None:
    await store.insert_many([("a", "driver", {}), ("b", "driver", {})])
    reader = await store.last_seq()
    await store.delete("a")
    await store.insert("c", "driver", {})
    await store.purge_tombstones(older_than_seq=await store.last_seq() + 1)
    with pytest.raises(ResyncRequired):
        await replica_changes(store, asking(since=reader - 1), max_bytes=1 << 20)
    fresh = await replica_changes(store, asking(since=0, limit=1), max_bytes=1 << 20)
    rest = await replica_changes(
        store,
        asking(since=fresh["last_seq"], horizon=fresh["horizon"]),
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
    answer = await replica_fetch(store, {"ids": ["a", "edge_secret::e", "missing"]})
    assert [doc["id"] for doc in answer["documents"]] == ["a"]


class CountingStore(SqliteStore):
    """The embedded store, counting reads of its encoded feed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    async def encoded_changes_since(
        self, seq: int, *, limit: int = 500, horizon: int = 0
    ) -> EncodedChangeBatch:
        self.reads += 1
        return await super().encoded_changes_since(seq, limit=limit, horizon=horizon)


@pytest.fixture
async def counting(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with opened_as(CountingStore, tmp_path / "counted.db") as store:
        yield store


def _ids(answer: EncodedAnswer) -> list[str]:
    return [change["id"] for change in answer.as_json()["changes"]]


async def test_edges_asking_alike_at_once_share_one_read(counting: CountingStore) -> None:
    await counting.insert_many([(f"mod-{n}", "module", {"n": n}) for n in range(5)])
    shared = SharedFeed(counting)
    args = asking(since=0, limit=3)
    answers = await asyncio.gather(*(shared.changes(args, max_bytes=1 << 20) for _ in range(50)))
    assert counting.reads == 1
    assert {answer.text for answer in answers} == {answers[0].text}
    assert _ids(answers[0]) == ["mod-0", "mod-1", "mod-2"]
    later = await shared.changes(args, max_bytes=1 << 20)
    assert (later.text, counting.reads) == (answers[0].text, 1)
    other = await shared.changes(asking(since=0, limit=2), max_bytes=1 << 20)
    assert (_ids(other), counting.reads) == (["mod-0", "mod-1"], 2)


async def test_a_write_that_moves_a_document_is_never_served_from_before(
    counting: CountingStore,
) -> None:
    await counting.insert_many([(f"mod-{n}", "module", {"n": n}) for n in range(3)])
    shared = SharedFeed(counting)
    args = asking(since=0)
    assert _ids(await shared.changes(args, max_bytes=1 << 20)) == ["mod-0", "mod-1", "mod-2"]
    await counting.replace("mod-0", {"n": 10})  # compaction: mod-0 moves to the end
    moved = (await shared.changes(args, max_bytes=1 << 20)).as_json()
    assert [c["id"] for c in moved["changes"]] == ["mod-1", "mod-2", "mod-0"]
    assert moved["changes"][-1]["body"] == {"n": 10}
    await counting.reset_replica()
    emptied = (await shared.changes(args, max_bytes=1 << 20)).as_json()
    assert emptied["changes"] == [] and emptied["horizon"] > 0


async def test_a_purge_after_a_shared_read_still_sends_the_reader_to_resync(
    counting: CountingStore,
) -> None:
    await counting.insert_many([("a", "driver", {}), ("b", "driver", {})])
    reader = await counting.last_seq()
    await counting.delete("a")
    shared = SharedFeed(counting)
    behind = asking(since=reader - 1)
    assert [
        c["deleted"] for c in (await shared.changes(behind, max_bytes=1 << 20)).as_json()["changes"]
    ] == [False, True]
    await counting.purge_tombstones(older_than_seq=await counting.last_seq() + 1)
    with pytest.raises(ResyncRequired):
        await shared.changes(behind, max_bytes=1 << 20)


async def test_one_edge_giving_up_does_not_cancel_the_read_of_the_others(
    counting: CountingStore,
) -> None:
    await counting.insert("a", "driver", {})
    shared = SharedFeed(counting)
    args = asking(since=0)
    first = asyncio.create_task(shared.changes(args, max_bytes=1 << 20))
    second = asyncio.create_task(shared.changes(args, max_bytes=1 << 20))
    await asyncio.sleep(0)
    first.cancel()
    assert _ids(await second) == ["a"]
    assert counting.reads == 1


class PlainStore:
    """A store without an encoded feed (Couchbase is one): only what the feed reads."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        return await self._store.changes_since(seq, limit=limit, horizon=horizon)


async def test_a_store_without_an_encoded_feed_answers_the_same(store: SqliteStore) -> None:
    await store.insert("a", "module", {"name": "Ü", "big": 2**70, "deep": [[{"x": None}]]})
    await store.insert("b", "module", {"blob": "x" * 5000})
    args = asking(since=0)
    plain = await SharedFeed(cast(Store, PlainStore(store))).changes(args, max_bytes=2000)
    encoded = await SharedFeed(store).changes(args, max_bytes=2000)
    assert plain.as_json() == encoded.as_json()
    assert plain.as_json()["changes"][0]["body"]["big"] == 2**70
    assert [s["id"] for s in plain.skipped] == ["b"]


async def test_changed_types_names_what_was_written_since(store: SqliteStore) -> None:
    await store.insert("drv", "driver", {})
    start = await store.last_seq()
    await store.insert("state-1", "control_state", {"online": True})
    await store.upsert("edge_secret::e", "edge_secret", {"secret": "s"})
    assert await changed_types(store, start) == {"control_state"}
    module = await store.insert("mod-1", "module", {})
    await store.delete(module.id)
    assert await changed_types(store, start) == {"control_state", "module"}
    assert await changed_types(store, await store.last_seq()) == set()
    await store.purge_tombstones(older_than_seq=await store.last_seq() + 1)
    assert await changed_types(store, start) is None, "the feed no longer reaches back"
