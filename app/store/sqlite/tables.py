"""The embedded store's tables, and the statements every part of the store shares.

- ``docs`` holds every document's latest state, deletions as tombstones (``deleted``
  set, no body). The change feed is this table ordered by ``seq``, so it is compacted
  by construction: each document appears once, at its last write.
- ``doc_index`` holds one ``(field, value, id)`` row per indexed value (one per element
  of a list field), rewritten with each write, so lookups by field use an index.
- ``meta`` holds counters: ``last_seq`` (never reused, even after purges and resets),
  ``purged_seq`` (tombstones up to it were purged) and ``replica_seq``.

Documents, the feed and the replica all write a document state the same way
(:meth:`Transaction.write`: a fresh sequence, the body as JSON text, its index rows
rewritten), so that is here, beside the schema it writes; the connection that runs
these statements, and what its failures mean, is ``database``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from app.store.base import INDEXED_FIELDS, Document, JsonObject, StoreUnavailable

SCHEMA_VERSION = 1
SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE,
    version TEXT NOT NULL,
    source_seq INTEGER,
    deleted INTEGER NOT NULL,
    body TEXT
);
CREATE INDEX IF NOT EXISTS docs_live_by_type ON docs (type, id) WHERE deleted = 0;
CREATE TABLE IF NOT EXISTS doc_index (
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (field, value, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_index_by_id ON doc_index (id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value)
    VALUES ('last_seq', 0), ('purged_seq', 0), ('replica_seq', 0);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
DOCUMENT_COLUMNS = "id, type, version, seq, body"
UPSERT = """
INSERT INTO docs (id, type, seq, version, source_seq, deleted, body)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    type = excluded.type, seq = excluded.seq, version = excluded.version,
    source_seq = excluded.source_seq, deleted = excluded.deleted, body = excluded.body
"""
IDS_IN_JSON = "id IN (SELECT value FROM json_each(?))"


async def create_schema(conn: aiosqlite.Connection) -> None:
    """Create the tables in a new file; refuse a file of another schema version."""
    [(version,)] = await conn.execute_fetchall("PRAGMA user_version")
    if version == 0:
        await conn.executescript(SCHEMA)
    elif version != SCHEMA_VERSION:
        raise StoreUnavailable(f"schema version {version} is not {SCHEMA_VERSION}")


@dataclass(frozen=True, slots=True)
class Row:
    """A document state to write: no body is a tombstone; no version takes the seq."""

    id: str
    type: str
    body: JsonObject | None
    version: str | None = None
    source_seq: int | None = None


class Transaction:
    """The statements of one open transaction; remembers the sequences it took."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.last_seq: int | None = None

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql, params)

    async def meta(self, key: str) -> int:
        [(value,)] = await self.fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return int(value)

    async def set_meta(self, key: str, value: int) -> None:
        await self.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))

    async def advance_meta(self, key: str, value: int) -> None:
        """Raise a counter to ``value``; a lower value leaves it as it is."""
        await self.execute("UPDATE meta SET value = max(value, ?) WHERE key = ?", (value, key))

    async def allocate(self, count: int) -> int:
        """Take ``count`` new sequences; return the first."""
        [(last,)] = await self.fetch(
            "UPDATE meta SET value = value + ? WHERE key = 'last_seq' RETURNING value", (count,)
        )
        self.last_seq = int(last)
        return self.last_seq - count + 1

    async def write(self, rows: Sequence[Row], *, returning: bool = True) -> list[Document]:
        """Store ``rows`` with fresh sequences and reindex them; return the live ones
        (read back from what was stored), unless not ``returning``."""
        if not rows:
            return []
        first = await self.allocate(len(rows))
        records: list[tuple[Any, ...]] = []
        entries: list[tuple[str, str, str]] = []
        written: list[Document] = []
        for seq, row in enumerate(rows, start=first):
            version = row.version or str(seq)
            encoded = None
            if row.body is not None:
                encoded = _encode(row.body)
                entries.extend(_index_entries(row.id, row.type, row.body))
                if returning:
                    written.append(Document(row.id, row.type, version, json.loads(encoded), seq))
            records.append(
                (row.id, row.type, seq, version, row.source_seq, encoded is None, encoded)
            )
        await self._conn.executemany(UPSERT, records)
        await self._conn.executemany(
            "DELETE FROM doc_index WHERE id = ?", [(row.id,) for row in rows]
        )
        await self._conn.executemany(
            "INSERT OR IGNORE INTO doc_index (field, value, id) VALUES (?, ?, ?)", entries
        )
        return written


def document(row: Sequence[Any]) -> Document:
    """The document of a row read as :data:`DOCUMENT_COLUMNS`."""
    doc_id, doc_type, version, seq, body = row
    return Document(id=doc_id, type=doc_type, version=version, body=json.loads(body), seq=seq)


def _index_entries(doc_id: str, doc_type: str, body: JsonObject) -> Iterator[tuple[str, str, str]]:
    """``(field, value, id)`` for each string value of an indexed field, list elements too."""
    for field in INDEXED_FIELDS.get(doc_type, ()):
        value = body.get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield field, item, doc_id


def _encode(body: JsonObject) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
