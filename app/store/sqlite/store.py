"""The embedded store as its users see it: one object for the store protocols.

:class:`SqliteStore` is a :class:`~app.store.base.Store`, a
:class:`~app.store.base.ReplicaStore` and an :class:`~app.store.base.EncodedFeed` over
one file; each method hands the call to the part whose job it is, so this module is the
table of contents and holds no SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from app.store.base import (
    Change,
    ChangeBatch,
    Document,
    EncodedChangeBatch,
    JsonObject,
    Page,
    SetAside,
)
from app.store.sqlite.database import Database
from app.store.sqlite.documents import Documents
from app.store.sqlite.feed import ChangeFeed
from app.store.sqlite.replica import Replica

URL_PREFIX = "sqlite:///"


class SqliteStore:
    """The :class:`~app.store.base.Store` on one SQLite file (``database``: how the file
    is kept safe; ``documents``, ``feed``, ``replica``: what is done with it)."""

    def __init__(self, path: Path | str, *, set_aside_if_corrupt: bool = False) -> None:
        self.path = Path(path)
        #: A replica, which the master can always fill again: checked when it opens and,
        #: when corrupt, moved aside so that the store starts empty.
        self._set_aside_if_corrupt = set_aside_if_corrupt
        self._db = Database(self.path)
        self._documents = Documents(self._db)
        self._feed = ChangeFeed(self._db)
        self._replica = Replica(self._db)

    @classmethod
    def from_url(cls, url: str, *, set_aside_if_corrupt: bool = False) -> SqliteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        path = url.removeprefix(URL_PREFIX)
        if path == url or not path:
            raise ValueError(f"a SQLite database URL reads sqlite:///PATH, not {url!r}")
        return cls(path, set_aside_if_corrupt=set_aside_if_corrupt)

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        check = self._replica.set_aside_if_corrupt if self._set_aside_if_corrupt else None
        await self._db.open(check=check)

    async def close(self) -> None:
        await self._db.close()

    # --- documents ----------------------------------------------------------------

    async def get(self, doc_id: str) -> Document:
        return await self._documents.get(doc_id)

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        return await self._documents.get_many(doc_ids)

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        return await self._documents.find(doc_type, where=where, after=after, limit=limit)

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        return await self._documents.insert(doc_id, doc_type, body)

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        return await self._documents.insert_many(docs)

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        return await self._documents.replace(doc_id, body, expected_version=expected_version)

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        return await self._documents.upsert(doc_id, doc_type, body)

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        return await self._documents.upsert_many(docs)

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        await self._documents.delete(doc_id, expected_version=expected_version)

    # --- change feed --------------------------------------------------------------

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        return await self._feed.changes_since(seq, limit=limit, horizon=horizon)

    async def encoded_changes_since(
        self, seq: int, *, limit: int = 500, horizon: int = 0
    ) -> EncodedChangeBatch:
        return await self._feed.encoded_changes_since(seq, limit=limit, horizon=horizon)

    @property
    def generation(self) -> int:
        return self._db.generation

    async def last_seq(self) -> int:
        return await self._feed.last_seq()

    def subscribe(self) -> AsyncIterator[int]:
        return self._feed.subscribe()

    async def purge_tombstones(self, older_than_seq: int) -> int:
        """:meth:`ChangeFeed.purge_tombstones`."""
        return await self._feed.purge_tombstones(older_than_seq)

    async def mark_sequence(self, at: float) -> int:
        """:meth:`ChangeFeed.mark_sequence`."""
        return await self._feed.mark_sequence(at)

    async def purge_deleted_before(self, before: float) -> int:
        """:meth:`ChangeFeed.purge_deleted_before`."""
        return await self._feed.purge_deleted_before(before)

    # --- replica ------------------------------------------------------------------

    async def apply_changes(self, changes: Sequence[Change], *, source_seq: int) -> None:
        await self._replica.apply_changes(changes, source_seq=source_seq)

    async def replica_seq(self) -> int:
        return await self._replica.replica_seq()

    async def reset_replica(self) -> None:
        """Drop every document; readers of this store's own feed must resync too."""
        await self._replica.reset()

    @property
    def set_aside(self) -> SetAside | None:
        """What was moved aside when the store opened, if anything."""
        return self._replica.set_aside
