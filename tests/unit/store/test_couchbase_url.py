"""The Couchbase store's pure parts: URL parsing, SQL++ building, stored-document shapes.

Operations against a cluster run in the contract suite when ENGINE_TEST_COUCHBASE_URL
is set; nothing here needs a server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.store.base import INDEXED_FIELDS, DocumentNotFound, StoreError, StoreUnavailable
from app.store.couchbase import (
    SEQUENCE_KEY,
    CouchbaseConfig,
    CouchbaseStore,
    FindQuery,
    ReplicatedByXdcr,
    StoredRow,
    changes_batch,
    changes_parameters,
    changes_statement,
    encode_document,
    encode_tombstone,
    index_statements,
    quote_identifier,
)
from app.store.couchbase.codec import count_of
from app.store.couchbase.sdk import load_sdk

URL = "couchbase://engine:s3cret@cb1.example/engine"
KEYSPACE = "`engine`.`_default`.`_default`"


# --- URL ---------------------------------------------------------------------------


def test_url_defaults() -> None:
    config = CouchbaseConfig.from_url(URL)

    assert config == CouchbaseConfig(
        connection_string="couchbase://cb1.example",
        username="engine",
        password="s3cret",
        bucket="engine",
        scope="_default",
        collection="_default",
        timeout_s=10.0,
    )
    assert config.keyspace == KEYSPACE


def test_url_with_everything() -> None:
    config = CouchbaseConfig.from_url(
        "couchbases://ad%40min:p%3Ass%2Fw@cb1.example:11207,cb2.example/my-bucket"
        "?scope=site&collection=docs&timeout=2.5&trust_store_path=/etc/ca.pem"
    )

    assert config.connection_string == (
        "couchbases://cb1.example:11207,cb2.example?trust_store_path=%2Fetc%2Fca.pem"
    )
    assert (config.username, config.password) == ("ad@min", "p:ss/w")
    assert (config.bucket, config.scope, config.collection) == ("my-bucket", "site", "docs")
    assert config.timeout_s == 2.5
    assert config.keyspace == "`my-bucket`.`site`.`docs`"


def test_url_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(CouchbaseConfig.from_url(URL))


def test_store_from_url_keeps_the_config() -> None:
    assert CouchbaseStore.from_url(URL).config == CouchbaseConfig.from_url(URL)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://engine:pw@cb1/engine", "not a Couchbase URL"),
        ("couchbase://cb1/engine", "needs credentials"),
        ("couchbase://engine@cb1/engine", "needs credentials"),
        ("couchbase://engine:pw@/engine", "names no host"),
        ("couchbase://engine:pw@cb1", "bucket name"),
        ("couchbase://engine:pw@cb1/engine/extra", "bucket name"),
        ("couchbase://engine:pw@cb1/engine?timeout=soon", "number of seconds"),
        ("couchbase://engine:pw@cb1/engine?timeout=0", "must be positive"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        CouchbaseConfig.from_url(url)


# --- SQL++ -------------------------------------------------------------------------


def test_identifiers_are_escaped() -> None:
    assert quote_identifier("plain") == "`plain`"
    assert quote_identifier("odd`name") == "`odd``name`"


def test_index_statements_cover_type_sequence_and_every_indexed_field() -> None:
    statements = index_statements(KEYSPACE)

    assert all("IF NOT EXISTS" in s for s in statements)
    expected = 2 + sum(len(fields) for fields in INDEXED_FIELDS.values())
    assert len(statements) == expected
    assert (
        f"CREATE INDEX `engine_type` IF NOT EXISTS ON {KEYSPACE}(type, META().id) "
        "WHERE _deleted IS MISSING"
    ) in statements
    assert f"CREATE INDEX `engine_seq` IF NOT EXISTS ON {KEYSPACE}(_seq, type)" in statements
    assert (
        "CREATE INDEX `engine_system_modules` IF NOT EXISTS ON "
        f"{KEYSPACE}(DISTINCT ARRAY v FOR v IN TOARRAY(`modules`) END, META().id) "
        'WHERE type = "system" AND _deleted IS MISSING'
    ) in statements


def test_find_query_by_type() -> None:
    query = FindQuery(KEYSPACE, "driver")

    assert query.page_statement() == (
        f"SELECT META(d).id AS id, META(d).cas AS cas, d AS doc FROM {KEYSPACE} AS d "
        'WHERE d.type = "driver" AND d._deleted IS MISSING ORDER BY META(d).id'
    )
    assert query.page_parameters() == {}
    assert query.count_statement() == (
        f"SELECT RAW COUNT(*) FROM {KEYSPACE} AS d "
        'WHERE d.type = "driver" AND d._deleted IS MISSING'
    )


def test_find_query_by_fields_with_paging() -> None:
    query = FindQuery(
        KEYSPACE, "system", {"edge_control_id": "edge-1", "modules": "mod-1"}, "sys-9", 20
    )

    statement = query.page_statement()
    assert "ANY v IN TOARRAY(d.`edge_control_id`) SATISFIES v = $w0 END" in statement
    assert "ANY v IN TOARRAY(d.`modules`) SATISFIES v = $w1 END" in statement
    assert statement.endswith("AND META(d).id > $after ORDER BY META(d).id LIMIT $limit")
    assert query.page_parameters() == {
        "w0": "edge-1",
        "w1": "mod-1",
        "after": "sys-9",
        "limit": 21,
    }
    assert "$after" not in query.count_statement()
    assert "LIMIT" not in query.count_statement()
    assert query.count_parameters() == {"w0": "edge-1", "w1": "mod-1"}


def test_type_literal_is_escaped() -> None:
    assert 'd.type = "we\\"ird"' in FindQuery(KEYSPACE, 'we"ird').page_statement()


def test_changes_query_leaves_master_only_types_out() -> None:
    assert changes_statement(KEYSPACE) == (
        f"SELECT META(d).id AS id, META(d).cas AS cas, d AS doc FROM {KEYSPACE} AS d "
        "WHERE d._seq > $since AND d.type NOT IN $hidden ORDER BY d._seq LIMIT $limit"
    )
    assert changes_parameters(7, 100) == {"since": 7, "hidden": ["edge_secret"], "limit": 101}


# --- stored documents --------------------------------------------------------------


def test_stored_document_carries_type_and_sequence_but_no_envelope() -> None:
    body = {"id": "x", "type": "other", "version": "1", "_seq": 99, "_deleted": True, "name": "A"}

    assert encode_document("driver", body, 12) == {"name": "A", "type": "driver", "_seq": 12}


def test_read_document_hides_internal_fields() -> None:
    row = StoredRow("drv-1", 1712, encode_document("driver", {"name": "A"}, 12))

    doc = row.document()

    assert (doc.id, doc.type, doc.version, doc.seq) == ("drv-1", "driver", "1712", 12)
    assert doc.body == {"name": "A"}
    assert doc.as_json() == {"id": "drv-1", "type": "driver", "version": "1712", "name": "A"}


def test_tombstone_reads_as_missing_and_as_a_deletion_in_the_feed() -> None:
    row = StoredRow("drv-1", 1800, encode_tombstone("driver", 13))

    with pytest.raises(DocumentNotFound):
        row.document()
    change = row.change()
    assert (change.seq, change.id, change.type, change.version) == (13, "drv-1", "driver", "1800")
    assert change.deleted
    assert change.body is None


def test_query_rows_are_read_with_their_cas() -> None:
    row = StoredRow.from_query(
        {"id": "m-1", "cas": 1617046112012992512, "doc": {"type": "module", "_seq": 4, "a": 1}}
    )

    assert row == StoredRow("m-1", 1617046112012992512, {"type": "module", "_seq": 4, "a": 1})
    assert row.change().body == {"a": 1}


@pytest.mark.parametrize("row", [None, [1], {"id": "x", "cas": 1, "doc": 5}])
def test_malformed_query_rows_are_store_errors(row: object) -> None:
    with pytest.raises(StoreError, match="unexpected query row"):
        StoredRow.from_query(row)


@pytest.mark.parametrize("rows", [[], [1, 2], ["3"]])
def test_a_malformed_count_is_a_store_error(rows: list[object]) -> None:
    with pytest.raises(StoreError, match="unexpected count"):
        count_of(rows)


def _rows(*seqs: int) -> list[StoredRow]:
    return [StoredRow(f"d-{seq}", 1000 + seq, encode_document("driver", {}, seq)) for seq in seqs]


def test_exhausted_feed_continues_from_the_newest_sequence() -> None:
    batch = changes_batch(_rows(3, 5), limit=10, newest=9)

    assert [c.seq for c in batch.changes] == [3, 5]
    assert (batch.last_seq, batch.more) == (9, False)


def test_changes_written_after_reading_the_newest_sequence_move_it_on() -> None:
    batch = changes_batch(_rows(3, 11), limit=10, newest=9)

    assert (batch.last_seq, batch.more) == (11, False)


def test_full_batch_continues_after_its_last_change() -> None:
    batch = changes_batch(_rows(3, 5, 8), limit=2, newest=9)

    assert [c.seq for c in batch.changes] == [3, 5]
    assert (batch.last_seq, batch.more) == (5, True)


# --- without a cluster -------------------------------------------------------------


@pytest.fixture
def sdk_missing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    load_sdk.cache_clear()
    monkeypatch.setitem(sys.modules, "acouchbase.cluster", None)
    yield
    load_sdk.cache_clear()


async def test_opening_without_the_sdk_says_how_to_install_it(sdk_missing: None) -> None:
    with pytest.raises(StoreUnavailable, match=r"pip install 'engine-ha\[couchbase\]'"):
        await CouchbaseStore.from_url(URL).open()


def test_the_module_loads_without_importing_the_sdk() -> None:
    probe = (
        "import sys, app.store.couchbase, app.store.xdcr; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('couchbase', 'acouchbase')]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=30)


async def test_a_cluster_that_does_not_answer_is_unavailable() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = CouchbaseStore.from_url(f"couchbase://engine:pw@127.0.0.1:{port}/engine?timeout=0.5")

    with pytest.raises(StoreUnavailable, match=r"Couchbase is unavailable: .*Timeout"):
        await store.open()
    await store.close()


async def test_operations_before_open_are_refused() -> None:
    store = CouchbaseStore.from_url(URL)

    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get("x")
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.last_seq()


async def test_lookups_on_fields_that_are_not_indexed_are_refused() -> None:
    store = CouchbaseStore.from_url(URL)

    with pytest.raises(ValueError, match="not indexed by name"):
        await store.find("driver", where={"name": "x"})
    with pytest.raises(ValueError, match="limit must be at least 1"):
        await store.find("driver", limit=0)


async def test_replica_operations_point_to_xdcr() -> None:
    store = CouchbaseStore.from_url(URL)

    with pytest.raises(ReplicatedByXdcr, match="XDCR replicates the bucket"):
        await store.apply_changes([], source_seq=1)
    with pytest.raises(ReplicatedByXdcr):
        await store.replica_seq()
    with pytest.raises(ReplicatedByXdcr):
        await store.reset_replica()


def test_the_sequence_counter_is_an_internal_key() -> None:
    assert SEQUENCE_KEY.startswith("_engine::")
