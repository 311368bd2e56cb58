"""The ``store`` fixture: every backend the contract suite can reach here.

- ``sqlite``: the embedded store, a fresh file per test;
- ``couchbase-standin``: the Couchbase store's own code on an in-memory cluster that
  behaves like the SDK (``tests/support/couchbase_standin.py``), a fresh one per test;
- ``etcd``: the etcd store on the session's real three-member cluster
  (``tests/support/etcd.py``), under a fresh key prefix per test;
- ``couchbase``: a real cluster, when ``ENGINE_TEST_COUCHBASE_URL`` names a test bucket
  (``make test-couchbase``). The bucket is shared across runs, so each test writes
  under its own id prefix and deletes what it wrote afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.store import Store, StoreError, open_store
from app.store.couchbase import CouchbaseConfig, CouchbaseStore
from tests.support.couchbase_standin import StandInCluster
from tests.support.etcd import EtcdCluster

COUCHBASE_URL_VARIABLE = "ENGINE_TEST_COUCHBASE_URL"
STANDIN_URL = "couchbase://engine:s3cret@standin.invalid/engine?timeout=2"

#: Every document type the suite writes: what the Couchbase clean-up looks through.
WRITTEN_TYPES = ("driver", "module", "system", "edge_secret")

#: A new, unopened store on the backend's data: opening it again reaches the same data.
StoreFactory = Callable[[], Store]


@pytest.fixture(
    params=[
        "sqlite",
        "couchbase-standin",
        "etcd",
        pytest.param("couchbase", marks=pytest.mark.couchbase_cluster),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "couchbase" and not os.environ.get(COUCHBASE_URL_VARIABLE):
        pytest.skip(
            f"set {COUCHBASE_URL_VARIABLE} to run the store contract suite against a real "
            "Couchbase cluster (make test-couchbase)"
        )
    return name


@pytest.fixture(scope="session")
def couchbase_url() -> str:
    """The real cluster's URL, once it has been reached: else every test fails at once."""
    url = os.environ[COUCHBASE_URL_VARIABLE]

    async def probe() -> None:
        store = open_store(url)
        await store.open()
        await store.close()

    try:
        asyncio.run(probe())
    except StoreError as exc:
        pytest.fail(f"cannot open {COUCHBASE_URL_VARIABLE}: {exc}", pytrace=False)
    return url


@pytest.fixture
def reopen(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreFactory:
    """How to open the backend under test (again)."""
    if backend == "couchbase":
        url: str = request.getfixturevalue("couchbase_url")
        return lambda: open_store(url)
    if backend == "etcd":
        etcd: EtcdCluster = request.getfixturevalue("etcd_cluster")
        etcd_url = etcd.url()
        return lambda: open_store(etcd_url)
    if backend == "couchbase-standin":
        cluster = StandInCluster()
        config = CouchbaseConfig.from_url(STANDIN_URL)
        return lambda: CouchbaseStore(config, cluster_connect=cluster.connect, poll_interval=0.05)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    return lambda: open_store(url)


@pytest.fixture
def ns() -> str:
    """A prefix for the ids a test writes, unique to the test."""
    return f"contract-{uuid.uuid4().hex[:10]}-"


@pytest.fixture
async def store(backend: str, reopen: StoreFactory, ns: str) -> AsyncIterator[Store]:
    opened = reopen()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
        if backend == "couchbase":
            await _delete_written(reopen, ns)


async def _delete_written(reopen: StoreFactory, ns: str) -> None:
    cleaner = reopen()
    await cleaner.open()
    try:
        for doc_type in WRITTEN_TYPES:
            page = await cleaner.find(doc_type)
            for doc in page.items:
                if doc.id.startswith(ns):
                    await cleaner.delete(doc.id)
    finally:
        await cleaner.close()
