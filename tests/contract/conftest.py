"""The ``store`` fixture: every backend the contract suite can reach here.

SQLite always runs (a fresh file per test). Couchbase runs when
``ENGINE_TEST_COUCHBASE_URL`` names a test bucket; the bucket is shared across runs,
so each test writes under its own id prefix and deletes what it wrote afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.store import Store, open_store

COUCHBASE_URL_VARIABLE = "ENGINE_TEST_COUCHBASE_URL"

#: Every document type the suite writes: what the Couchbase clean-up looks through.
WRITTEN_TYPES = ("driver", "module", "system", "edge_secret")


@pytest.fixture(params=["sqlite", "couchbase"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "couchbase" and not os.environ.get(COUCHBASE_URL_VARIABLE):
        pytest.skip(
            f"set {COUCHBASE_URL_VARIABLE} to run the store contract suite against Couchbase"
        )
    return name


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    """The URL of the backend under test; opening it again reaches the same data."""
    if backend == "couchbase":
        return os.environ[COUCHBASE_URL_VARIABLE]
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def ns() -> str:
    """A prefix for the ids a test writes, unique to the test."""
    return f"contract-{uuid.uuid4().hex[:10]}-"


@pytest.fixture
async def store(backend: str, store_url: str, ns: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
        if backend == "couchbase":
            await _delete_written(store_url, ns)


async def _delete_written(store_url: str, ns: str) -> None:
    cleaner = open_store(store_url)
    await cleaner.open()
    try:
        for doc_type in WRITTEN_TYPES:
            page = await cleaner.find(doc_type)
            for doc in page.items:
                if doc.id.startswith(ns):
                    await cleaner.delete(doc.id)
    finally:
        await cleaner.close()
