"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.main import compose, create_app
from app.node import Node
from app.settings import Settings
from app.store import SqliteStore
from tests.support.etcd import NOT_INSTALLED, EtcdCluster, etcd_available, running_cluster
from tests.support.stores import opened
from tests.support.wait import wait_until

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        admin_token=ADMIN_TOKEN,
        drivers_path=tmp_path / "drivers",
        public_url="http://master.test",
    )


@pytest.fixture
def node(settings: Settings) -> Node:
    return compose(settings)


@pytest.fixture
async def api(settings: Settings, node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of an in-process master (lifespan run by hand)."""
    app = create_app(settings, node=node)
    await node.start()
    await wait_until(lambda: node.boot.ready, timeout=10, message="the master to boot")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://master.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as client:
            yield client
    finally:
        await node.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An embedded store, empty and open for the test; ``store.path`` is its file.

    Modules about another backend (Couchbase, etcd, the contract suite) override it with
    theirs, and a few with a store of their own kind (one that refuses writes).
    """
    async with opened(tmp_path / "store.db") as store:
        yield store


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real three-member etcd for the session (tests/support/etcd.py); each test
    works under a prefix of its own. Skipped, saying why, where etcd is not installed."""
    if not etcd_available():
        pytest.skip(NOT_INSTALLED)
    with running_cluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster
