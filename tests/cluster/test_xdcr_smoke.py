"""XDCR between two real Couchbase clusters, set up by ``python -m app couchbase xdcr``.

Runs with ``make test-couchbase`` when both are configured (it starts no cluster):

- ``ENGINE_TEST_COUCHBASE_URL``: the master's bucket, ``couchbase://USER:PASSWORD@HOST/BUCKET``;
- ``ENGINE_TEST_COUCHBASE_EDGE_URL``: the edge's bucket on a second cluster;
- ``ENGINE_TEST_COUCHBASE_EDGE_REST_URL`` (optional): the edge's REST API as the master
  cluster reaches it (default ``http://EDGE-HOST:8091``), and
  ``ENGINE_TEST_COUCHBASE_REST_URL`` the master's as this machine reaches it.

The users need the Full Admin role (or XDCR Admin on the master and XDCR Inbound on
the edge, plus data and query access). The test leaves behind the replication it
created (named ``engine-test-edge``) and tombstones of the documents it wrote.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from app.store.base import DocumentNotFound
from app.store.couchbase import CouchbaseConfig, CouchbaseStore
from app.store.xdcr import ClusterAccess, XdcrReport, provision_xdcr, replication_filter

pytestmark = pytest.mark.couchbase_cluster

MASTER_VARIABLE = "ENGINE_TEST_COUCHBASE_URL"
EDGE_VARIABLE = "ENGINE_TEST_COUCHBASE_EDGE_URL"
#: How long XDCR may take to deliver a write to the edge.
DELIVERY_S = 60.0


def _rest_access(config: CouchbaseConfig, override: str | None) -> ClusterAccess:
    """The cluster's REST API: the override, or the URL's first host on 8091 (18091 for TLS)."""
    if override:
        return ClusterAccess(override, config.username, config.password)
    parts = urlsplit(config.connection_string)
    host = urlsplit("//" + parts.netloc.split(",")[0]).hostname or ""
    host = f"[{host}]" if ":" in host else host
    scheme, port = ("https", 18091) if parts.scheme == "couchbases" else ("http", 8091)
    return ClusterAccess(f"{scheme}://{host}:{port}", config.username, config.password)


@pytest.fixture
def configs() -> tuple[CouchbaseConfig, CouchbaseConfig]:
    master, edge = os.environ.get(MASTER_VARIABLE), os.environ.get(EDGE_VARIABLE)
    if not (master and edge):
        pytest.skip(f"set {MASTER_VARIABLE} and {EDGE_VARIABLE} (two clusters) to test XDCR")
    return CouchbaseConfig.from_url(master), CouchbaseConfig.from_url(edge)


@pytest.fixture
async def stores(
    configs: tuple[CouchbaseConfig, CouchbaseConfig],
) -> AsyncIterator[tuple[CouchbaseStore, CouchbaseStore]]:
    master, edge = CouchbaseStore(configs[0]), CouchbaseStore(configs[1])
    await master.open()
    try:
        await edge.open()
        try:
            yield master, edge
        finally:
            await edge.close()
    finally:
        await master.close()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DELIVERY_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"XDCR did not deliver within {DELIVERY_S:.0f}s: {what}")
        await asyncio.sleep(0.5)


async def test_xdcr_copies_documents_with_their_versions_and_keeps_secrets_home(
    configs: tuple[CouchbaseConfig, CouchbaseConfig],
    stores: tuple[CouchbaseStore, CouchbaseStore],
) -> None:
    master_config, edge_config = configs
    master_rest = _rest_access(master_config, os.environ.get("ENGINE_TEST_COUCHBASE_REST_URL"))
    edge_rest = _rest_access(edge_config, os.environ.get("ENGINE_TEST_COUCHBASE_EDGE_REST_URL"))

    def provision() -> Awaitable[XdcrReport]:
        return provision_xdcr(
            master_rest,
            edge_rest,
            name="engine-test-edge",
            from_bucket=master_config.bucket,
            to_bucket=edge_config.bucket,
        )

    report = await provision()
    assert report.filter_expression == replication_filter()
    again = await provision()
    assert (again.reference_action, again.replication_action) == ("found", "found")

    master, edge = stores
    ns = f"xdcr-{uuid.uuid4().hex[:10]}-"
    edge_seq = await edge.last_seq()
    secret = await master.upsert(f"edge_secret::{ns}", "edge_secret", {"secret": "s3cr3t"})
    written = await master.insert_many([(f"{ns}{n}", "driver", {"n": n}) for n in range(20)])

    async def delivered() -> bool:
        found = await edge.get_many([doc.id for doc in written])
        return len(found) == len(written)

    await _eventually(delivered, "20 documents written on the master")
    copies = await edge.get_many([doc.id for doc in written])
    assert [copies[doc.id].version for doc in written] == [doc.version for doc in written], (
        "XDCR keeps the master's CAS, so versions match on the edge"
    )
    assert [copies[doc.id].body for doc in written] == [doc.body for doc in written]
    with pytest.raises(DocumentNotFound):
        await edge.get(secret.id)  # written before the 20 that arrived: the filter kept it
    assert await edge.last_seq() == edge_seq, "each cluster keeps its own change counter"

    await master.delete(written[0].id)

    async def deletion_delivered() -> bool:
        return written[0].id not in await edge.get_many([written[0].id])

    await _eventually(deletion_delivered, "a deletion on the master")
    for doc in written[1:]:
        await master.delete(doc.id)
    await master.delete(secret.id)
