"""An embedded store opened for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TypeVar

from app.store import SqliteStore

StoreT = TypeVar("StoreT", bound=SqliteStore)


def opened(path: Path) -> AbstractAsyncContextManager[SqliteStore]:
    """The SQLite store at ``path`` (created if missing), closed on exit."""
    return opened_as(SqliteStore, path)


@contextlib.asynccontextmanager
async def opened_as(kind: Callable[[Path], StoreT], path: Path) -> AsyncIterator[StoreT]:
    """:func:`opened` for a store of one's own kind (one that counts or refuses writes)."""
    store = kind(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
