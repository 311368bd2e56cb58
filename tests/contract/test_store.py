"""The behaviour every Store backend promises (app/store/base.py), run on each backend.

Tests write under their own id prefix (``ns``) and look up by values unique to the
test, so they hold on a shared Couchbase bucket as well as on a fresh SQLite file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from app.store import (
    Change,
    Document,
    DocumentExists,
    DocumentNotFound,
    EncodedFeed,
    FeedCompacted,
    JsonObject,
    ReplicaStore,
    Store,
    VersionConflict,
)
from tests.contract.conftest import StoreFactory

TIMEOUT_S = 5.0


async def _next(updates: AsyncIterator[int]) -> int:
    return await asyncio.wait_for(anext(updates), TIMEOUT_S)


async def _module(store: Store, doc_id: str, driver_id: str = "drv") -> Document:
    return await store.insert(doc_id, "module", {"driver_id": driver_id, "name": "Display"})


def _ours(ns: str, ids: list[str]) -> list[str]:
    return [doc_id for doc_id in ids if doc_id.startswith(ns)]


# --- documents ------------------------------------------------------------------------


async def test_insert_returns_the_document_that_get_reads_back(store: Store, ns: str) -> None:
    inserted = await store.insert(f"{ns}a", "module", {"name": "Display", "settings": {"x": 1}})
    assert inserted.id == f"{ns}a"
    assert inserted.type == "module"
    assert inserted.version
    assert inserted.body == {"name": "Display", "settings": {"x": 1}}
    assert await store.get(f"{ns}a") == inserted
    assert inserted.as_json() == {
        "id": f"{ns}a",
        "type": "module",
        "version": inserted.version,
        "name": "Display",
        "settings": {"x": 1},
    }


async def test_envelope_keys_in_a_body_are_not_stored(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "module", {"name": "Display"})
    rewritten = await store.replace(doc.id, doc.as_json(), expected_version=doc.version)
    assert rewritten.body == {"name": "Display"}
    assert (await store.get(doc.id)).body == {"name": "Display"}


async def test_insert_of_an_existing_id_raises_and_keeps_the_document(
    store: Store, ns: str
) -> None:
    original = await store.insert(f"{ns}a", "module", {"name": "first"})
    with pytest.raises(DocumentExists) as raised:
        await store.insert(f"{ns}a", "module", {"name": "second"})
    assert raised.value.doc_id == f"{ns}a"
    assert await store.get(f"{ns}a") == original


async def test_get_of_a_missing_id_raises_document_not_found(store: Store, ns: str) -> None:
    with pytest.raises(DocumentNotFound) as raised:
        await store.get(f"{ns}missing")
    assert raised.value.doc_id == f"{ns}missing"


async def test_get_many_returns_the_existing_documents_by_id(store: Store, ns: str) -> None:
    a = await store.insert(f"{ns}a", "driver", {"n": 1})
    b = await store.insert(f"{ns}b", "driver", {"n": 2})
    await store.insert(f"{ns}gone", "driver", {})
    await store.delete(f"{ns}gone")
    found = await store.get_many([f"{ns}b", f"{ns}missing", f"{ns}a", f"{ns}gone"])
    assert found == {a.id: a, b.id: b}
    assert await store.get_many([]) == {}


async def test_replace_with_the_current_version_writes_a_new_version(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "module", {"name": "old"})
    replaced = await store.replace(doc.id, {"name": "new"}, expected_version=doc.version)
    assert replaced.version != doc.version
    assert replaced.type == "module", "replace keeps the type"
    assert await store.get(doc.id) == replaced


async def test_replace_with_a_stale_version_raises_version_conflict(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "module", {"name": "old"})
    current = await store.replace(doc.id, {"name": "newer"})
    with pytest.raises(VersionConflict) as raised:
        await store.replace(doc.id, {"name": "lost"}, expected_version=doc.version)
    assert (raised.value.expected, raised.value.actual) == (doc.version, current.version)
    assert await store.get(doc.id) == current


async def test_replace_of_a_missing_document_raises_document_not_found(
    store: Store, ns: str
) -> None:
    with pytest.raises(DocumentNotFound):
        await store.replace(f"{ns}missing", {"name": "x"})


async def test_upsert_creates_then_overwrites_whatever_the_version(store: Store, ns: str) -> None:
    created = await store.upsert(f"{ns}a", "driver", {"n": 1})
    overwritten = await store.upsert(f"{ns}a", "driver", {"n": 2})
    assert overwritten.version != created.version
    assert (await store.get(f"{ns}a")).body == {"n": 2}


async def test_upsert_many_writes_new_and_existing_documents(store: Store, ns: str) -> None:
    await store.upsert(f"{ns}a", "driver", {"n": 1})
    written = await store.upsert_many([(f"{ns}a", "driver", {"n": 2}), (f"{ns}b", "user", {})])
    assert [doc.id for doc in written] == [f"{ns}a", f"{ns}b"]
    assert (await store.get(f"{ns}a")).body == {"n": 2}
    assert (await store.get(f"{ns}b")).type == "user"
    with pytest.raises(DocumentExists):
        await store.upsert_many([(f"{ns}c", "user", {}), (f"{ns}c", "user", {})])


async def test_delete_removes_the_document(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "driver", {})
    await store.delete(doc.id, expected_version=doc.version)
    with pytest.raises(DocumentNotFound):
        await store.get(doc.id)
    with pytest.raises(DocumentNotFound):
        await store.delete(doc.id)
    with pytest.raises(DocumentNotFound):
        await store.replace(doc.id, {})


async def test_delete_with_a_stale_version_raises_and_keeps_the_document(
    store: Store, ns: str
) -> None:
    doc = await store.insert(f"{ns}a", "driver", {"n": 1})
    current = await store.replace(doc.id, {"n": 2})
    with pytest.raises(VersionConflict):
        await store.delete(doc.id, expected_version=doc.version)
    assert await store.get(doc.id) == current


async def test_insert_over_a_deleted_document_revives_it(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "driver", {"n": 1})
    await store.delete(doc.id)
    revived = await store.insert(doc.id, "driver", {"n": 2})
    assert revived.version != doc.version
    assert await store.get(doc.id) == revived


async def test_insert_many_writes_every_document(store: Store, ns: str) -> None:
    docs = [(f"{ns}{n:03d}", "module", {"driver_id": f"{ns}drv", "n": n}) for n in range(20)]
    written = await store.insert_many(docs)
    assert [(doc.id, doc.type, doc.body) for doc in written] == docs
    assert (await store.find("module", where={"driver_id": f"{ns}drv"})).total == 20


async def test_insert_many_writes_nothing_when_one_id_exists(store: Store, ns: str) -> None:
    await store.insert(f"{ns}b", "driver", {})
    batch: list[tuple[str, str, JsonObject]] = [(f"{ns}{name}", "driver", {}) for name in "abc"]
    with pytest.raises(DocumentExists) as raised:
        await store.insert_many(batch)
    assert raised.value.doc_id == f"{ns}b"
    assert await store.get_many([f"{ns}a", f"{ns}c"]) == {}
    with pytest.raises(DocumentExists):
        await store.insert_many([(f"{ns}x", "driver", {}), (f"{ns}x", "driver", {})])
    assert await store.get_many([f"{ns}x"]) == {}
    last_seq = await store.last_seq()
    assert await store.insert_many([]) == []
    assert await store.last_seq() == last_seq, "an empty batch is no write"


# --- lookups --------------------------------------------------------------------------


async def test_find_by_type_returns_live_documents_of_that_type_by_id(
    store: Store, ns: str
) -> None:
    for name in ("c", "a", "b"):
        await _module(store, f"{ns}{name}")
    await store.insert(f"{ns}driver", "driver", {})
    await _module(store, f"{ns}deleted")
    await store.delete(f"{ns}deleted")
    page = await store.find("module")
    assert _ours(ns, [doc.id for doc in page.items]) == [f"{ns}a", f"{ns}b", f"{ns}c"]
    assert all(doc.type == "module" for doc in page.items)


async def test_find_by_a_scalar_indexed_field(store: Store, ns: str) -> None:
    await _module(store, f"{ns}a", driver_id=f"{ns}projector")
    await _module(store, f"{ns}b", driver_id=f"{ns}display")
    await _module(store, f"{ns}c", driver_id=f"{ns}projector")
    page = await store.find("module", where={"driver_id": f"{ns}projector"})
    assert [doc.id for doc in page.items] == [f"{ns}a", f"{ns}c"]
    assert page.total == 2


async def test_find_by_a_list_field_matches_any_element(store: Store, ns: str) -> None:
    edge = f"{ns}edge"
    await store.insert(f"{ns}s1", "system", {"modules": [f"{ns}m1", f"{ns}m2"]})
    await store.insert(f"{ns}s2", "system", {"modules": [f"{ns}m2"], "edge_control_id": edge})
    await store.insert(f"{ns}s3", "system", {"modules": [], "edge_control_id": edge})
    by_module = await store.find("system", where={"modules": f"{ns}m2"})
    assert [doc.id for doc in by_module.items] == [f"{ns}s1", f"{ns}s2"]
    both = await store.find("system", where={"modules": f"{ns}m2", "edge_control_id": edge})
    assert [doc.id for doc in both.items] == [f"{ns}s2"]


async def test_find_follows_writes_to_indexed_fields(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}s", "system", {"modules": [f"{ns}m1"]})
    await store.replace(doc.id, {"modules": [f"{ns}m2"]})
    assert (await store.find("system", where={"modules": f"{ns}m1"})).total == 0
    assert (await store.find("system", where={"modules": f"{ns}m2"})).total == 1
    await store.delete(doc.id)
    assert (await store.find("system", where={"modules": f"{ns}m2"})).total == 0


async def test_find_on_a_field_that_is_not_indexed_raises(store: Store) -> None:
    with pytest.raises(ValueError, match="name"):
        await store.find("module", where={"name": "Display"})


async def test_find_pages_with_after_and_limit(store: Store, ns: str) -> None:
    drv = f"{ns}drv"
    await store.insert_many([(f"{ns}{n:02d}", "module", {"driver_id": drv}) for n in range(7)])
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.find("module", where={"driver_id": drv}, after=after, limit=3)
        assert page.total == 7, "total ignores paging"
        seen += [doc.id for doc in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"{ns}{n:02d}" for n in range(7)]
    last = await store.find("module", where={"driver_id": drv}, after=f"{ns}05", limit=3)
    assert ([doc.id for doc in last.items], last.next_after) == ([f"{ns}06"], None)


# --- change feed ----------------------------------------------------------------------


async def test_changes_since_lists_latest_states_in_sequence_order(store: Store, ns: str) -> None:
    start = await store.last_seq()
    a = await store.insert(f"{ns}a", "driver", {"n": 1})
    b = await store.insert(f"{ns}b", "driver", {"n": 1})
    a2 = await store.replace(a.id, {"n": 2})
    batch = await store.changes_since(start)
    ours = [change for change in batch.changes if change.id.startswith(ns)]
    assert [(c.id, c.version, c.body) for c in ours] == [
        (b.id, b.version, b.body),
        (a.id, a2.version, a2.body),
    ]
    assert [c.seq for c in batch.changes] == sorted(c.seq for c in batch.changes)
    assert batch.last_seq == await store.last_seq()
    assert not batch.more
    assert (await store.changes_since(batch.last_seq)).changes == []


async def test_changes_since_pages_with_limit_and_more(store: Store, ns: str) -> None:
    start = await store.last_seq()
    await store.insert_many([(f"{ns}{n}", "driver", {}) for n in range(5)])
    seen: list[str] = []
    seq = start
    while True:
        batch = await store.changes_since(seq, limit=2)
        assert len(batch.changes) <= 2
        seen += [change.id for change in batch.changes]
        seq = batch.last_seq
        if not batch.more:
            break
    assert _ours(ns, seen) == [f"{ns}{n}" for n in range(5)]


async def test_a_deletion_is_a_tombstone_in_the_feed(store: Store, ns: str) -> None:
    doc = await store.insert(f"{ns}a", "module", {"driver_id": "d"})
    start = await store.last_seq()
    await store.delete(doc.id)
    [tombstone] = (await store.changes_since(start)).changes
    assert (tombstone.id, tombstone.type, tombstone.deleted, tombstone.body) == (
        doc.id,
        "module",
        True,
        None,
    )
    assert tombstone.seq > start


async def test_master_only_types_stay_out_of_the_feed(store: Store, ns: str) -> None:
    start = await store.last_seq()
    await store.insert(f"{ns}a", "driver", {})
    await store.upsert(f"{ns}secret", "edge_secret", {"secret": "s3cr3t"})
    await store.insert(f"{ns}b", "driver", {})
    await store.upsert(f"{ns}secret", "edge_secret", {"secret": "rotated"})
    first = await store.changes_since(start, limit=1)
    assert ([c.id for c in first.changes], first.more) == ([f"{ns}a"], True)
    rest = await store.changes_since(first.last_seq, limit=1)
    assert ([c.id for c in rest.changes], rest.more) == ([f"{ns}b"], False)
    assert rest.last_seq == await store.last_seq(), "the reader moves past the secret"


async def test_a_reader_ahead_of_the_feed_is_told_to_resync(store: Store, ns: str) -> None:
    await store.insert(f"{ns}a", "driver", {})
    with pytest.raises(FeedCompacted):
        await store.changes_since(await store.last_seq() + 1000)


# --- subscriptions --------------------------------------------------------------------


async def test_subscribe_yields_the_newest_sequence_then_wakes_on_writes(
    store: Store, ns: str
) -> None:
    updates = store.subscribe()
    assert await _next(updates) == await store.last_seq()
    woken = asyncio.create_task(_next(updates))
    await store.insert(f"{ns}a", "driver", {})
    assert await woken == await store.last_seq()


async def test_a_slow_subscriber_skips_to_the_newest_sequence(store: Store, ns: str) -> None:
    updates = store.subscribe()
    await _next(updates)
    for n in range(3):
        await store.insert(f"{ns}{n}", "driver", {})
    assert await _next(updates) == await store.last_seq()


async def test_subscriptions_end_when_the_store_closes(store: Store) -> None:
    updates = store.subscribe()
    await _next(updates)

    async def drain() -> list[int]:
        return [seq async for seq in updates]

    rest = asyncio.create_task(drain())
    await store.close()
    assert await asyncio.wait_for(rest, TIMEOUT_S) == []


# --- concurrency ----------------------------------------------------------------------


async def test_concurrent_compare_and_swap_increments_lose_nothing(store: Store, ns: str) -> None:
    counter = await store.insert(f"{ns}counter", "driver", {"count": 0})

    async def increment() -> None:
        while True:
            current = await store.get(counter.id)
            body = {"count": current.body["count"] + 1}
            try:
                await store.replace(counter.id, body, expected_version=current.version)
                return
            except VersionConflict:
                continue

    await asyncio.gather(*(increment() for _ in range(50)))
    assert (await store.get(counter.id)).body == {"count": 50}


async def test_concurrent_inserts_of_one_id_have_exactly_one_winner(store: Store, ns: str) -> None:
    attempts = [store.insert(f"{ns}one", "driver", {"writer": n}) for n in range(20)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [result for result in results if isinstance(result, Document)]
    assert len(winners) == 1
    assert all(isinstance(r, DocumentExists) for r in results if r is not winners[0])
    assert await store.get(f"{ns}one") == winners[0]


async def test_the_encoded_feed_is_the_feed_as_text(store: Store, ns: str) -> None:
    if not isinstance(store, EncodedFeed):
        pytest.skip(f"{type(store).__name__} hands out no encoded feed")
    start = await store.last_seq()
    await store.insert(f"{ns}a", "driver", {"name": 'Ünïcode "quoted" \\ \n', "n": [1, 2.5, None]})
    doomed = await store.insert(f"{ns}b", "module", {"driver_id": "d", "deep": {"x": {"y": True}}})
    await store.upsert(f"{ns}secret", "edge_secret", {"secret": "s3cr3t"})
    await store.delete(doomed.id)
    await store.insert(f"{ns}c", "driver", {})
    for limit in (1, 2, 10):
        plain = await store.changes_since(start, limit=limit)
        encoded = await store.encoded_changes_since(start, limit=limit)
        assert [json.loads(change.text) for change in encoded.changes] == [
            change.as_json() for change in plain.changes
        ]
        assert [(c.seq, c.id, c.type) for c in encoded.changes] == [
            (c.seq, c.id, c.type) for c in plain.changes
        ]
        assert (encoded.last_seq, encoded.more, encoded.horizon) == (
            plain.last_seq,
            plain.more,
            plain.horizon,
        )
    with pytest.raises(FeedCompacted):
        await store.encoded_changes_since(await store.last_seq() + 5)


async def test_the_generation_moves_with_every_write(store: Store, ns: str) -> None:
    if not isinstance(store, EncodedFeed):
        pytest.skip(f"{type(store).__name__} hands out no encoded feed")
    seen = [store.generation]
    doc = await store.insert(f"{ns}a", "driver", {})
    seen.append(store.generation)
    await store.changes_since(0)
    await store.get(doc.id)
    assert store.generation == seen[-1], "a read is no write"
    await store.delete(doc.id)
    seen.append(store.generation)
    assert seen == sorted(set(seen))
    assert (await store.encoded_changes_since(0)).generation == store.generation


# --- replica side ---------------------------------------------------------------------


@pytest.fixture
def replica(store: Store) -> ReplicaStore:
    """The store as a link-fed replica; a backend that cannot be one is skipped."""
    if not isinstance(store, ReplicaStore):
        pytest.skip(f"{type(store).__name__} is no ReplicaStore: edges never replicate into it")
    return store


def _change(seq: int, doc_id: str, body: dict[str, str] | None = None) -> Change:
    return Change(
        seq=seq, id=doc_id, type="module", version=f"m{seq}", deleted=body is None, body=body
    )


async def test_apply_changes_writes_the_masters_versions(replica: ReplicaStore, ns: str) -> None:
    drv = f"{ns}drv"
    await replica.apply_changes(
        [_change(10, f"{ns}a", {"driver_id": drv}), _change(12, f"{ns}b", {"driver_id": drv})],
        source_seq=12,
    )
    a = await replica.get(f"{ns}a")
    assert (a.type, a.version, a.body) == ("module", "m10", {"driver_id": drv})
    found = await replica.find("module", where={"driver_id": drv})
    assert [doc.id for doc in found.items] == [f"{ns}a", f"{ns}b"]
    assert await replica.replica_seq() == 12


async def test_apply_changes_applies_tombstones(replica: ReplicaStore, ns: str) -> None:
    await replica.apply_changes([_change(10, f"{ns}a", {"driver_id": "d"})], source_seq=10)
    await replica.apply_changes([_change(11, f"{ns}a")], source_seq=11)
    with pytest.raises(DocumentNotFound):
        await replica.get(f"{ns}a")
    assert (await replica.find("module", where={"driver_id": "d"})).total == 0


async def test_apply_changes_skips_what_is_not_newer(replica: ReplicaStore, ns: str) -> None:
    await replica.apply_changes([_change(12, f"{ns}a", {"driver_id": "new"})], source_seq=12)
    applied = await replica.get(f"{ns}a")
    last_seq = await replica.last_seq()
    await replica.apply_changes([_change(12, f"{ns}a", {"driver_id": "new"})], source_seq=12)
    await replica.apply_changes([_change(9, f"{ns}a", {"driver_id": "old"})], source_seq=12)
    await replica.apply_changes([_change(8, f"{ns}a")], source_seq=12)
    assert await replica.get(f"{ns}a") == applied
    assert await replica.last_seq() == last_seq, "a skipped change is not a write"


async def test_apply_changes_keeps_the_newest_of_a_batch(replica: ReplicaStore, ns: str) -> None:
    batch = [_change(14, f"{ns}a", {"driver_id": "newest"}), _change(13, f"{ns}a")]
    await replica.apply_changes(batch, source_seq=14)
    assert (await replica.get(f"{ns}a")).body == {"driver_id": "newest"}


async def test_the_replica_sequence_survives_a_reopen(
    replica: ReplicaStore, reopen: StoreFactory, ns: str
) -> None:
    assert await replica.replica_seq() == 0
    await replica.apply_changes([_change(7, f"{ns}a", {"driver_id": "d"})], source_seq=9)
    await replica.close()
    reopened = reopen()
    assert isinstance(reopened, ReplicaStore)
    await reopened.open()
    try:
        assert await reopened.replica_seq() == 9
        assert (await reopened.get(f"{ns}a")).version == "m7"
    finally:
        await reopened.close()


async def test_reset_replica_drops_every_document(replica: ReplicaStore, ns: str) -> None:
    await replica.apply_changes([_change(5, f"{ns}a", {"driver_id": "d"})], source_seq=5)
    await replica.insert(f"{ns}local", "driver", {})
    await replica.reset_replica()
    assert await replica.get_many([f"{ns}a", f"{ns}local"]) == {}
    assert (await replica.find("module", where={"driver_id": "d"})).total == 0
    assert await replica.replica_seq() == 0
    await replica.apply_changes([_change(5, f"{ns}a", {"driver_id": "d"})], source_seq=5)
    assert (await replica.get(f"{ns}a")).version == "m5", "a resync starts from nothing"
