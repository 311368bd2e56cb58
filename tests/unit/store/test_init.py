"""Picking the store backend from the database URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.store import SqliteStore, open_store


def test_a_sqlite_url_opens_the_embedded_store() -> None:
    store = open_store("sqlite:////var/lib/engine/engine.db")
    assert isinstance(store, SqliteStore)
    assert store.path == Path("/var/lib/engine/engine.db")


@pytest.mark.parametrize("scheme", ["couchbase", "couchbases"])
def test_a_couchbase_url_opens_the_couchbase_store(scheme: str) -> None:
    from app.store.couchbase import CouchbaseStore

    store = open_store(f"{scheme}://user:password@db.example/engine")
    assert isinstance(store, CouchbaseStore)


def test_the_couchbase_store_is_imported_only_when_asked_for() -> None:
    probe = "import sys, app.store; print('app.store.couchbase' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_an_unknown_scheme_is_refused_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="'postgres'") as raised:
        open_store("postgres://user:hunter2@db.example/engine")
    assert "hunter2" not in str(raised.value)
