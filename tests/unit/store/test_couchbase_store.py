"""The Couchbase store's own handling of what a cluster does, over the SDK stand-in.

The behaviour every store shares runs in the contract suite (tests/contract) on the
same stand-in; here are what only Couchbase does: connecting, indexes, the SDK's
errors and outages, partial batches, other writers of the bucket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from couchbase import exceptions as sdk_errors

from app.store.base import DocumentExists, DocumentNotFound, StoreError, StoreUnavailable
from app.store.couchbase import (
    SEQUENCE_KEY,
    CouchbaseConfig,
    CouchbaseStore,
    encode_document,
    index_statements,
)
from tests.support.couchbase_standin import StandInCluster
from tests.support.wait import wait_until

URL = "couchbase://engine:s3cret@standin.invalid/engine?timeout=2"
KEYSPACE = ("engine", "_default", "_default")

#: Every SDK exception the store reports as an outage (StoreUnavailable).
OUTAGES = [
    sdk_errors.TimeoutException,
    sdk_errors.AmbiguousTimeoutException,
    sdk_errors.UnAmbiguousTimeoutException,
    sdk_errors.ServiceUnavailableException,
    sdk_errors.TemporaryFailException,
    sdk_errors.RequestCanceledException,
    sdk_errors.MissingConnectionException,
    sdk_errors.AuthenticationException,
    sdk_errors.BucketNotFoundException,
]


def store_on(cluster: StandInCluster, url: str = URL) -> CouchbaseStore:
    return CouchbaseStore(
        CouchbaseConfig.from_url(url), cluster_connect=cluster.connect, poll_interval=0.02
    )


@pytest.fixture
def cluster() -> StandInCluster:
    return StandInCluster()


@pytest.fixture
async def store(cluster: StandInCluster) -> AsyncIterator[CouchbaseStore]:
    opened = store_on(cluster)
    await opened.open()
    yield opened
    await opened.close()


# --- connecting ------------------------------------------------------------------------


async def test_open_creates_every_index_once_and_is_idempotent(cluster: StandInCluster) -> None:
    store = store_on(cluster)
    await store.open()
    await store.open()
    try:
        assert len(cluster.indexes[KEYSPACE]) == len(index_statements("k"))
        assert cluster.connections == 1
    finally:
        await store.close()
        await store.close()
    assert cluster.connections == 0


async def test_an_index_another_server_created_meanwhile_is_fine(cluster: StandInCluster) -> None:
    cluster.fail("query", sdk_errors.QueryIndexAlreadyExistsException(message="exists"))
    store = store_on(cluster)
    await store.open()
    await store.close()


async def test_open_continues_the_sequence_the_bucket_holds(cluster: StandInCluster) -> None:
    first = store_on(cluster)
    await first.open()
    await first.insert("a", "driver", {})
    await first.close()
    second = store_on(cluster)
    await second.open()
    try:
        assert await second.last_seq() == 1
        assert (await second.insert("b", "driver", {})).seq == 2
    finally:
        await second.close()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("couchbase://engine:wrong@standin.invalid/engine", "unavailable: AuthenticationException"),
        ("couchbase://engine:s3cret@standin.invalid/other", "unavailable: BucketNotFoundException"),
    ],
)
async def test_a_cluster_refusing_us_is_unavailable_with_the_reason(
    cluster: StandInCluster, url: str, complaint: str
) -> None:
    with pytest.raises(StoreUnavailable, match=complaint):
        await store_on(cluster, url).open()


async def test_a_missing_collection_fails_open_and_closes_the_connection(
    cluster: StandInCluster,
) -> None:
    store = store_on(cluster, f"{URL}&collection=missing")
    with pytest.raises(StoreError, match="KeyspaceNotFoundException"):
        await store.open()
    assert cluster.connections == 0


async def test_an_unreachable_cluster_is_unavailable(cluster: StandInCluster) -> None:
    cluster.down = True
    with pytest.raises(StoreUnavailable, match="UnAmbiguousTimeoutException"):
        await store_on(cluster).open()


async def test_a_failure_to_close_is_logged_not_raised(
    cluster: StandInCluster, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_on(cluster)
    await store.open()
    cluster.fail("close", sdk_errors.RequestCanceledException(message="already gone"))
    await store.close()
    assert "closing the Couchbase connection" in caplog.text


# --- the SDK's errors --------------------------------------------------------------------


@pytest.mark.parametrize("error", OUTAGES, ids=lambda error: error.__name__)
async def test_every_outage_of_the_sdk_is_store_unavailable(
    store: CouchbaseStore, cluster: StandInCluster, error: type[sdk_errors.CouchbaseException]
) -> None:
    cluster.fail("get", error(message="no answer"))
    with pytest.raises(StoreUnavailable, match=f"{error.__name__}: no answer"):
        await store.get("a")


async def test_other_sdk_failures_are_store_errors_naming_the_exception(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    cluster.fail("query", sdk_errors.InternalServerFailureException(message="index scan failed"))
    with pytest.raises(StoreError, match="InternalServerFailureException: index scan failed") as e:
        await store.find("driver")
    assert not isinstance(e.value, StoreUnavailable)


async def test_an_outage_fails_each_operation_and_loses_nothing(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    doc = await store.insert("a", "driver", {"n": 1})
    cluster.down = True
    for operation in (
        store.get("a"),
        store.insert("b", "driver", {}),
        store.replace("a", {"n": 2}),
        store.delete("a"),
        store.find("driver"),
        store.changes_since(0),
        store.last_seq(),
    ):
        with pytest.raises(StoreUnavailable):
            await operation
    cluster.down = False
    assert await store.get("a") == doc
    assert [c.id for c in (await store.changes_since(0)).changes] == ["a"]


async def test_a_timed_out_write_may_have_happened(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    """An ambiguous timeout: the caller is told of the outage, yet the write stands."""
    doc = await store.insert("a", "driver", {"n": 1})
    cluster.fail("replace", sdk_errors.AmbiguousTimeoutException(message="t/o"), after_write=True)
    with pytest.raises(StoreUnavailable, match="AmbiguousTimeoutException"):
        await store.replace("a", {"n": 2}, expected_version=doc.version)
    assert (await store.get("a")).body == {"n": 2}


async def test_a_write_that_loses_a_cas_race_reads_again_and_retries(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    await store.insert("a", "driver", {"n": 1})
    cluster.fail("replace", sdk_errors.CasMismatchException(message="cas"))
    assert (await store.replace("a", {"n": 2})).body == {"n": 2}
    cluster.fail("replace", sdk_errors.CasMismatchException(message="cas"))
    await store.delete("a")
    with pytest.raises(DocumentNotFound):
        await store.get("a")


async def test_a_deleted_id_retaken_meanwhile_is_document_exists(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    await store.insert("a", "driver", {})
    await store.delete("a")
    cluster.fail("replace", sdk_errors.CasMismatchException(message="cas"))
    with pytest.raises(DocumentExists):
        await store.insert("a", "driver", {})


# --- batches -------------------------------------------------------------------------


async def test_a_batch_failing_midway_withdraws_what_it_wrote(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    cluster.fail("insert", sdk_errors.UnAmbiguousTimeoutException(message="t/o"), skip=2)
    with pytest.raises(StoreUnavailable):
        await store.insert_many([(f"d{n}", "driver", {}) for n in range(4)])
    assert await store.get_many([f"d{n}" for n in range(4)]) == {}
    feed = (await store.changes_since(0)).changes
    assert [(c.id, c.deleted) for c in feed] == [("d0", True), ("d1", True)]


async def test_a_batch_withdraws_a_write_that_timed_out_but_happened(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    timeout = sdk_errors.AmbiguousTimeoutException(message="t/o")
    cluster.fail("insert", timeout, skip=1, after_write=True)
    with pytest.raises(StoreUnavailable):
        await store.insert_many([(f"d{n}", "driver", {}) for n in range(3)])
    assert await store.get_many(["d0", "d1", "d2"]) == {}
    assert cluster.value("d1")["_deleted"] is True


async def test_a_withdrawal_keeps_what_another_writer_changed_since(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    timeout = sdk_errors.AmbiguousTimeoutException(message="t/o")
    cluster.fail("insert", timeout, after_write=True)
    cluster.fail("replace", sdk_errors.CasMismatchException(message="cas"))
    with pytest.raises(StoreUnavailable):
        await store.insert_many([("d0", "driver", {})])
    assert "_deleted" not in cluster.value("d0"), "the other writer's version stays"


async def test_a_withdrawal_the_cluster_refuses_is_logged(
    store: CouchbaseStore, cluster: StandInCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.fail("insert", sdk_errors.UnAmbiguousTimeoutException(message="t/o"), skip=1)
    cluster.fail("get", sdk_errors.UnAmbiguousTimeoutException(message="t/o"), skip=2)
    with caplog.at_level(logging.WARNING), pytest.raises(StoreUnavailable):
        await store.insert_many([("d0", "driver", {}), ("d1", "driver", {})])
    assert "could not withdraw a partial insert of 2 documents" in caplog.text
    assert (await store.get("d0")).id == "d0", "left behind, and said so"


# --- what the bucket holds -------------------------------------------------------------


async def test_the_store_own_keys_are_never_documents(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    await store.insert("a", "driver", {})
    with pytest.raises(DocumentNotFound):
        await store.get(SEQUENCE_KEY)
    assert await store.get_many([SEQUENCE_KEY, "a"]) == {"a": await store.get("a")}
    for write in (
        store.insert(SEQUENCE_KEY, "driver", {}),
        store.upsert(SEQUENCE_KEY, "driver", {}),
    ):
        with pytest.raises(ValueError, match="the store's own"):
            await write
    with pytest.raises(DocumentNotFound):
        await store.replace(SEQUENCE_KEY, {})
    assert cluster.value(SEQUENCE_KEY) == 1, "the counter is untouched"


async def test_a_value_that_is_not_a_json_object_is_a_store_error(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    cluster.data[KEYSPACE]["odd"] = cluster.encode(["not", "an", "object"])
    with pytest.raises(StoreError, match="not a JSON object"):
        await store.get("odd")


async def test_documents_are_stored_with_their_type_and_sequence(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    doc = await store.insert("a", "module", {"driver_id": "d"})
    assert cluster.value("a") == encode_document("module", {"driver_id": "d"}, doc.seq)
    assert int(doc.version) > 2**60, "a CAS, as 64-bit as the server's"


async def test_values_reach_sql_as_named_parameters(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    await store.find("module", where={"driver_id": 'd" OR 1=1'}, limit=5)
    await store.changes_since(0)
    parameters = [found for statement, found in cluster.queries if statement.startswith("SELECT")]
    assert sorted(parameters, key=len) == [
        {"w0": 'd" OR 1=1'},
        {"w0": 'd" OR 1=1', "limit": 6},
        {"since": 0, "hidden": ["edge_secret"], "limit": 501},
    ]
    assert all("OR 1=1" not in statement for statement, _ in cluster.queries)


# --- other writers ---------------------------------------------------------------------


async def _written_by_another_client(cluster: StandInCluster, doc_id: str) -> None:
    other = store_on(cluster)
    await other.open()
    try:
        await other.insert(doc_id, "driver", {})
    finally:
        await other.close()


async def test_writes_by_another_client_of_the_bucket_are_noticed_by_polling(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    updates = store.subscribe()
    assert await anext(updates) == 0
    await _written_by_another_client(cluster, "a")
    assert await asyncio.wait_for(anext(updates), 10) == 1


async def test_polling_through_an_outage_goes_on_afterwards(
    store: CouchbaseStore, cluster: StandInCluster
) -> None:
    updates = store.subscribe()
    await anext(updates)
    cluster.down = True
    await wait_until(lambda: cluster.refused >= 3, message="polls to fail")
    cluster.down = False
    await _written_by_another_client(cluster, "a")
    assert await asyncio.wait_for(anext(updates), 10) == 1
