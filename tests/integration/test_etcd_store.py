"""What the etcd store does beyond the contract suite, on a real three-member etcd:
other processes' writes, readers behind its mirror or behind etcd's compaction, a
member lost, etcd's request limit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from app.store import FeedCompacted, StoreError, StoreUnavailable, open_store
from app.store.etcd import EtcdClient, EtcdConfig, EtcdStore
from tests.support.etcd import EtcdCluster
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def url(etcd_cluster: EtcdCluster) -> str:
    return etcd_cluster.url()


@pytest.fixture
async def store(url: str) -> AsyncIterator[EtcdStore]:
    opened = EtcdStore.from_url(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _opened(url: str) -> EtcdStore:
    opened = open_store(url)
    assert isinstance(opened, EtcdStore)
    await opened.open()
    return opened


async def test_another_process_sees_a_write_as_soon_as_it_is_acknowledged(
    store: EtcdStore, url: str
) -> None:
    other = await _opened(url)
    try:
        for n in range(20):
            doc = await store.insert(f"s{n}", "system", {"edge_control_id": "lobby"})
            found = await other.find("system", where={"edge_control_id": "lobby"})
            assert doc in found.items
            assert (await other.get_many([doc.id]))[doc.id] == doc
    finally:
        await other.close()


async def test_a_reader_behind_the_mirror_gets_deletions_from_etcd_history(
    store: EtcdStore, url: str
) -> None:
    """A master restarted (a new mirror) still tells an edge what was deleted meanwhile."""
    kept = await store.insert("kept", "driver", {})
    doomed = await store.insert("doomed", "module", {"driver_id": kept.id})
    reader_seq = await store.last_seq()
    await store.delete(doomed.id)
    await store.upsert("secret", "edge_secret", {"secret": "s3cr3t"})
    await store.delete("secret")
    restarted = await _opened(url)
    try:
        batch = await restarted.changes_since(reader_seq)
        assert [(c.id, c.type, c.deleted) for c in batch.changes] == [("doomed", "module", True)]
        assert batch.last_seq == await store.last_seq()
    finally:
        await restarted.close()


async def test_a_reader_behind_etcds_compaction_point_is_told_to_resync(
    store: EtcdStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    doomed = await store.insert("doomed", "driver", {})
    reader_seq = await store.last_seq()
    await store.delete(doomed.id)
    await store.insert("later", "driver", {})
    client = EtcdClient(EtcdConfig.from_url(url))
    try:
        head = await client.range("/")
        await client.compact(head.revision)
    finally:
        await client.close()
    restarted = await _opened(url)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(FeedCompacted):
            await restarted.changes_since(reader_seq)
        assert "behind etcd's compaction point" in caplog.text
        full = await restarted.changes_since(0)
        assert [c.id for c in full.changes if c.id in ("doomed", "later")] == ["later"]
        assert full.horizon == full.last_seq, "a full read is no gap for its reader"
        again = await restarted.changes_since(1, horizon=full.horizon)
        assert again.last_seq == full.last_seq
    finally:
        await restarted.close()


async def test_tombstone_retention_compacts_etcd_history(store: EtcdStore) -> None:
    """The housekeeping pass: deletions older than the retention are forgotten."""
    doomed = await store.insert("doomed", "driver", {})
    reader_seq = await store.last_seq()
    await store.delete(doomed.id)
    await store.mark_sequence(1000.0)
    await store.insert("after-mark", "driver", {})
    assert await store.purge_deleted_before(999.0) == 0, "no mark that old"
    assert await store.purge_deleted_before(1000.0) == 1
    with pytest.raises(FeedCompacted):
        await store.changes_since(reader_seq)
    assert [c.id for c in (await store.changes_since(0)).changes] == ["after-mark"]


async def test_the_store_carries_on_when_the_member_it_uses_dies(
    etcd_cluster: EtcdCluster,
) -> None:
    """A follower the client talks to is killed: the next endpoint serves, unnoticed."""
    leader = etcd_cluster.leader()
    victim = next(m for m in etcd_cluster.members if m is not leader)
    others = [m for m in etcd_cluster.members if m is not victim]
    endpoints = ",".join(f"127.0.0.1:{m.client_port}" for m in [victim, *others])
    store = await _opened(f"etcd://{endpoints}/{uuid.uuid4().hex}")
    try:
        await store.insert("before", "driver", {})
        updates = store.subscribe()
        await anext(updates)
        etcd_cluster.kill(victim)
        after = await store.insert("after", "driver", {})
        assert (await store.find("driver")).total == 2
        assert await asyncio.wait_for(anext(updates), 5) >= after.seq
    finally:
        etcd_cluster.restart(victim)
        await store.close()


async def test_the_store_answers_again_soon_after_the_raft_leader_dies(
    etcd_cluster: EtcdCluster, store: EtcdStore
) -> None:
    """A write in flight when etcd's leader dies may fail (StoreUnavailable, its outcome
    unknown); once the other two members elected a leader, writes go through again."""
    leader = etcd_cluster.leader()
    etcd_cluster.kill(leader)
    started = time.monotonic()
    try:

        async def writes() -> bool:
            try:
                await store.upsert("probe", "driver", {})
            except StoreUnavailable:
                return False
            return True

        await wait_until(writes, timeout=15, message="a write after etcd's leader died")
        assert time.monotonic() - started < 12
    finally:
        etcd_cluster.restart(leader)


@pytest.mark.parametrize("mib", [1.6, 2.0])
async def test_a_document_over_etcds_request_limit_is_refused_with_the_reason(
    store: EtcdStore, mib: float
) -> None:
    """Over etcd's 1.5 MiB request limit, or its gateway's 2 MiB message limit."""
    with pytest.raises(StoreError, match="max-request-bytes"):
        await store.insert("huge", "driver", {"blob": "x" * int(mib * 1024 * 1024)})
    assert await store.get_many(["huge"]) == {}
