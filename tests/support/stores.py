"""An embedded store opened for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from app.store import SqliteStore


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SqliteStore]:
    """The SQLite store at ``path`` (created if missing), closed on exit."""
    store = SqliteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
