"""The edge's replica over a real link (in memory) from a master's real SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.edge.replica import Replicator, XdcrReplicator, replica_for
from app.errors import ResyncRequired
from app.link import LinkClosed, LinkConnection, LinkRequestError
from app.link.ops import (
    EDGE_TO_MASTER,
    REPLICA_CHANGES,
    REPLICA_FETCH,
    ReplicaBatch,
    ReplicaChangesArgs,
    ReplicaDocuments,
    ReplicaFetchArgs,
    op_table,
)
from app.master.feed import replica_changes
from app.store import (
    Change,
    Document,
    DocumentNotFound,
    JsonObject,
    ReplicaStore,
    SqliteStore,
)
from app.store.couchbase import CouchbaseStore
from tests.support.stores import opened
from tests.support.wait import wait_until
from tests.unit.link.memory import memory_pair

WAIT = 5.0

Snapshot = dict[str, tuple[str, str, JsonObject]]


class FakeMaster:
    """The master's end of replication, over a real store, answering as the master does."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.asked: list[dict[str, Any]] = []
        self.fetched: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        #: Changes a faulty master would add to every answer.
        self.extra: list[Change] = []
        #: Called before answering the n-th request (1-based); may break the link.
        self.before_answer: Callable[[int], Awaitable[None]] | None = None

    async def changes(self, args: ReplicaChangesArgs) -> ReplicaBatch:
        self.asked.append(dict(args))
        if self.before_answer is not None:
            await self.before_answer(len(self.asked))
        await self.gate.wait()
        answer = await replica_changes(self.store, args, max_bytes=1 << 20)
        answer["changes"] += [change.as_json() for change in self.extra]
        return answer

    async def fetch(self, args: ReplicaFetchArgs) -> ReplicaDocuments:
        self.fetched.append(list(args["ids"]))
        found = await self.store.get_many(args["ids"])
        return {"documents": [doc.as_json() for doc in found.values()]}


@pytest.fixture
async def master_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(tmp_path / "master.db") as store:
        yield store


@pytest.fixture
async def edge_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(tmp_path / "edge.db") as store:
        yield store


@pytest.fixture
def master(master_store: SqliteStore) -> FakeMaster:
    return FakeMaster(master_store)


@asynccontextmanager
async def linked(master: FakeMaster) -> AsyncIterator[tuple[LinkConnection, LinkConnection]]:
    """``(master's end, edge's end)`` of a running link."""
    master_end, edge_end = memory_pair()
    to_edge = LinkConnection(
        master_end,
        handlers=op_table(
            EDGE_TO_MASTER, REPLICA_CHANGES.serve(master.changes), REPLICA_FETCH.serve(master.fetch)
        ),
        name="edge 'edge-1'",
    )
    to_master = LinkConnection(edge_end, handlers={}, name="master")
    runs = [asyncio.create_task(link.run()) for link in (to_edge, to_master)]
    try:
        yield to_edge, to_master
    finally:
        await to_edge.close()
        await asyncio.wait_for(asyncio.gather(*runs), WAIT)


@pytest.fixture
async def link(master: FakeMaster) -> AsyncIterator[LinkConnection]:
    async with linked(master) as (_, to_master):
        yield to_master


async def replicator(store: ReplicaStore, *, batch: int = 10) -> Replicator:
    replica = Replicator(store, batch=batch)
    await replica.open()
    return replica


async def snapshot(store: SqliteStore) -> Snapshot:
    """Every live replicated document: id → (type, version, body)."""
    batch = await store.changes_since(0, limit=1_000_000)
    return {c.id: (c.type, c.version, c.body or {}) for c in batch.changes if not c.deleted}


async def write_modules(store: SqliteStore, count: int, *, start: int = 0) -> None:
    await store.insert_many(
        [
            (f"mod-{n:04d}", "module", {"driver_id": "drv-1", "name": f"M{n}"})
            for n in range(start, start + count)
        ]
    )


# --- catching up ----------------------------------------------------------------------


async def test_catch_up_copies_everything_in_bounded_batches(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 25)
    replica = await replicator(edge_store, batch=10)

    assert await replica.catch_up(link) == 25

    assert [asked["limit"] for asked in master.asked] == [10, 10, 10]
    assert [asked["since"] for asked in master.asked] == [0, 10, 20]
    assert await snapshot(edge_store) == await snapshot(master_store)
    assert replica.seq == await master_store.last_seq() == await edge_store.replica_seq()


async def test_the_next_batch_is_asked_for_while_this_one_is_written(
    master: FakeMaster,
    master_store: SqliteStore,
    edge_store: SqliteStore,
    link: LinkConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await write_modules(master_store, 25)
    replica = await replicator(edge_store, batch=10)
    write = edge_store.apply_changes
    writes = 0

    async def write_once_the_next_batch_is_asked_for(
        changes: Sequence[Change], *, source_seq: int
    ) -> None:
        nonlocal writes
        writes += 1
        # Written one after the other, batch n would never see request n + 1.
        await wait_until(lambda: len(master.asked) >= min(writes + 1, 3), timeout=WAIT)
        await write(changes, source_seq=source_seq)

    monkeypatch.setattr(edge_store, "apply_changes", write_once_the_next_batch_is_asked_for)

    assert await replica.catch_up(link) == 25

    assert [asked["since"] for asked in master.asked] == [0, 10, 20]
    assert await snapshot(edge_store) == await snapshot(master_store)


async def test_catching_up_again_asks_from_where_it_stopped_and_writes_nothing(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 5)
    replica = await replicator(edge_store)
    await replica.catch_up(link)
    edge_seq = await edge_store.last_seq()

    assert await replica.catch_up(link) == 0

    assert master.asked[-1]["since"] == await master_store.last_seq()
    assert await edge_store.last_seq() == edge_seq, "nothing was written"


async def test_updates_and_deletions_replicate(
    master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 3)
    replica = await replicator(edge_store)
    await replica.catch_up(link)

    await master_store.replace("mod-0001", {"driver_id": "drv-1", "name": "Renamed"})
    await master_store.delete("mod-0002")
    await replica.catch_up(link)

    assert (await edge_store.get("mod-0001")).body["name"] == "Renamed"
    with pytest.raises(DocumentNotFound):
        await edge_store.get("mod-0002")
    assert await snapshot(edge_store) == await snapshot(master_store)


async def test_a_link_lost_mid_catch_up_keeps_whole_batches_and_resumes_after_a_restart(
    master: FakeMaster, master_store: SqliteStore, tmp_path: Path
) -> None:
    await write_modules(master_store, 35)

    async def lose_the_link_on_the_third_request(n: int) -> None:
        if n == 3:
            await to_edge.close()

    master.before_answer = lose_the_link_on_the_third_request
    async with opened(tmp_path / "edge.db") as edge_store, linked(master) as (to_edge, to_master):
        with pytest.raises(LinkClosed):
            await (await replicator(edge_store)).catch_up(to_master)
        assert await edge_store.replica_seq() == 20, "the two whole batches are kept"
        assert len(await snapshot(edge_store)) == 20

    master.before_answer = None
    async with opened(tmp_path / "edge.db") as edge_store, linked(master) as (_, to_master):
        replica = await replicator(edge_store)
        assert replica.seq == 20
        assert await replica.catch_up(to_master) == 15
        assert await snapshot(edge_store) == await snapshot(master_store)


async def test_applying_a_batch_twice_changes_nothing(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 4)
    replica = await replicator(edge_store)
    await replica.catch_up(link)
    before = await snapshot(edge_store)
    edge_seq = await edge_store.last_seq()

    replica.seq = 0  # as if the sequence had not been recorded: the same batch again
    await replica.catch_up(link)

    assert await snapshot(edge_store) == before
    assert await edge_store.last_seq() == edge_seq


# --- full resync ------------------------------------------------------------------------


async def compact_past(replica: Replicator, master_store: SqliteStore) -> None:
    """Delete a document and purge its tombstone before the edge has seen it."""
    await master_store.delete("mod-0003")
    await master_store.replace("mod-0004", {"driver_id": "drv-1", "name": "Changed"})
    await write_modules(master_store, 3, start=100)
    assert await master_store.purge_tombstones(await master_store.last_seq() + 1) == 1
    assert replica.seq < await master_store.last_seq()


async def test_a_feed_compacted_past_the_edge_makes_it_resync_from_nothing(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 12)
    replica = await replicator(edge_store, batch=100)
    await replica.catch_up(link)
    await compact_past(replica, master_store)
    master.asked.clear()

    await replica.catch_up(link)

    assert [asked["since"] for asked in master.asked] == [12, 0]
    with pytest.raises(DocumentNotFound):
        await edge_store.get("mod-0003")
    assert await snapshot(edge_store) == await snapshot(master_store)
    assert replica.seq == await master_store.last_seq() == await edge_store.replica_seq()


async def test_a_resync_keeps_the_old_copy_until_the_new_one_is_complete(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 12)
    replica = await replicator(edge_store, batch=100)
    await replica.catch_up(link)
    await compact_past(replica, master_store)
    old_copy = await snapshot(edge_store)

    async def hold_the_masters_state(n: int) -> None:
        if n == 3:  # 1: the first catch-up, 2: compacted, 3: the master's state from 0
            master.gate.clear()

    master.before_answer = hold_the_masters_state
    resync = asyncio.create_task(replica.catch_up(link))
    await wait_until(lambda: len(master.asked) == 3, timeout=WAIT, message="the state request")

    assert await snapshot(edge_store) == old_copy, "untouched while the state is gathered"
    master.gate.set()
    await asyncio.wait_for(resync, WAIT)
    assert await snapshot(edge_store) == await snapshot(master_store)


async def test_a_resync_larger_than_one_batch(
    master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 12)
    replica = await replicator(edge_store, batch=5)
    await replica.catch_up(link)
    await compact_past(replica, master_store)

    await replica.catch_up(link)

    assert await snapshot(edge_store) == await snapshot(master_store)


async def test_a_master_recreated_behind_the_edge_makes_it_start_over(
    master: FakeMaster, edge_store: SqliteStore, link: LinkConnection, tmp_path: Path
) -> None:
    await write_modules(master.store, 20)
    replica = await replicator(edge_store)
    await replica.catch_up(link)

    async with opened(tmp_path / "recreated.db") as recreated:
        await recreated.insert("mod-0007", "module", {"driver_id": "drv-2", "name": "New"})
        master.store = recreated
        await replica.catch_up(link)
        assert await snapshot(edge_store) == await snapshot(recreated)
        assert replica.seq == await recreated.last_seq()


async def test_other_errors_from_the_master_are_not_a_resync(
    master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 3)
    replica = await replicator(edge_store)
    await replica.catch_up(link)
    await master_store.close()  # the master's store fails

    with pytest.raises(LinkRequestError) as raised:
        await replica.catch_up(link)
    assert raised.value.code != ResyncRequired.__name__
    assert len(await snapshot(edge_store)) == 3, "the copy is kept"


# --- edge secrets -----------------------------------------------------------------------


async def test_edge_secrets_never_reach_the_replica(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await master_store.upsert("edge_secret::edge-1", "edge_secret", {"secret": "s3cr3t"})
    await write_modules(master_store, 2)
    master.extra = [  # a faulty master that sends one anyway
        Change(1, "edge_secret::edge-2", "edge_secret", "1", False, {"secret": "l3ak"})
    ]
    replica = await replicator(edge_store)

    await replica.catch_up(link)

    assert (await edge_store.find("edge_secret")).total == 0
    for doc_id in ("edge_secret::edge-1", "edge_secret::edge-2"):
        with pytest.raises(DocumentNotFound):
            await edge_store.get(doc_id)
    assert len(await snapshot(edge_store)) == 2
    assert replica.seq == await master_store.last_seq(), "the feed moves past them"


async def test_catch_ups_run_one_at_a_time(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 3)
    replica = await replicator(edge_store)
    master.gate.clear()
    first = asyncio.create_task(replica.catch_up(link))
    await wait_until(lambda: len(master.asked) == 1, timeout=WAIT, message="the first request")

    second = asyncio.create_task(replica.catch_up(link))
    await asyncio.sleep(0)  # the second call starts while the first waits for its answer
    master.gate.set()

    assert list(await asyncio.wait_for(asyncio.gather(first, second), WAIT)) == [3, 0]
    assert [asked["since"] for asked in master.asked] == [0, 3]


async def test_model_updated_catches_up(
    master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 2)
    replica = await replicator(edge_store)
    version = (await master_store.get("mod-0001")).version

    assert await replica.updated(link, {"mod-0001": version}) == []

    assert (await edge_store.get("mod-0001")).version == version


# --- Couchbase: XDCR fills the bucket ----------------------------------------------------


def test_couchbase_stores_are_replicated_by_xdcr(edge_store: SqliteStore) -> None:
    couchbase = CouchbaseStore.from_url("couchbase://engine:secret@cb.example/engine")
    assert isinstance(replica_for(couchbase), XdcrReplicator)
    assert isinstance(replica_for(edge_store), Replicator)


async def test_xdcr_needs_nothing_over_the_link_to_catch_up(
    master: FakeMaster, master_store: SqliteStore, link: LinkConnection
) -> None:
    couchbase = CouchbaseStore.from_url("couchbase://engine:secret@cb.example/engine")
    replica = XdcrReplicator(couchbase)
    await write_modules(master_store, 2)

    await replica.open()  # the store's replica sequence is never asked for: it has none
    assert await replica.catch_up(link) == 0

    assert master.asked == []
    assert replica.seq == 0


async def test_documents_xdcr_delivers_in_time_are_not_fetched(
    master: FakeMaster,
    master_store: SqliteStore,
    edge_store: SqliteStore,
    link: LinkConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await write_modules(master_store, 2)
    await edge_store.apply_changes((await master_store.changes_since(0)).changes, source_seq=2)
    await master_store.replace("mod-0001", {"driver_id": "drv-1", "name": "Renamed"})
    await master_store.delete("mod-0000")
    news = (await master_store.changes_since(2)).changes
    versions = {change.id: None if change.deleted else change.version for change in news}
    looks = 0
    get_many = edge_store.get_many

    async def counted_get_many(doc_ids: Sequence[str]) -> dict[str, Document]:
        nonlocal looks
        looks += 1
        return await get_many(doc_ids)

    monkeypatch.setattr(edge_store, "get_many", counted_get_many)
    replica = XdcrReplicator(edge_store, wait_s=WAIT, poll_s=0.01)
    waiting = asyncio.create_task(replica.updated(link, versions))
    await wait_until(lambda: looks >= 2, timeout=WAIT, message="the edge to look twice")

    assert not waiting.done()
    await edge_store.apply_changes(news, source_seq=4)  # XDCR delivers
    assert await asyncio.wait_for(waiting, WAIT) == []
    assert master.fetched == []


async def test_documents_xdcr_delivers_late_are_fetched_over_the_link(
    master: FakeMaster, master_store: SqliteStore, edge_store: SqliteStore, link: LinkConnection
) -> None:
    await write_modules(master_store, 3)
    await edge_store.apply_changes((await master_store.changes_since(0)).changes, source_seq=3)
    await master_store.replace("mod-0001", {"driver_id": "drv-1", "name": "Renamed"})
    await master_store.delete("mod-0002")
    await master_store.upsert("edge_secret::edge-1", "edge_secret", {"secret": "s3cr3t"})
    versions = {
        "mod-0000": (await edge_store.get("mod-0000")).version,  # already delivered
        "mod-0001": (await master_store.get("mod-0001")).version,
        "mod-0002": None,
        "edge_secret::edge-1": (await master_store.get("edge_secret::edge-1")).version,
    }
    replica = XdcrReplicator(edge_store, wait_s=0.2, poll_s=0.01)

    started = time.monotonic()
    late = await replica.updated(link, versions)

    assert time.monotonic() - started >= 0.2, "XDCR was given its time first"
    assert sorted(late) == ["edge_secret::edge-1", "mod-0001", "mod-0002"]
    assert master.fetched == [late]
    assert (await edge_store.get("mod-0001")).body["name"] == "Renamed"
    for gone in ("mod-0002", "edge_secret::edge-1"):
        with pytest.raises(DocumentNotFound):
            await edge_store.get(gone)
