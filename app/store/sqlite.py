"""The embedded store: one SQLite file per server, in WAL mode, through aiosqlite.

Tables:

- ``docs`` holds every document's latest state, deletions as tombstones (``deleted``
  set, no body). The change feed is this table ordered by ``seq``, so it is compacted
  by construction: each document appears once, at its last write.
- ``doc_index`` holds one ``(field, value, id)`` row per indexed value (one per element
  of a list field), rewritten with each write, so lookups by field use an index.
- ``meta`` holds counters: ``last_seq`` (never reused, even after purges and resets),
  ``purged_seq`` (tombstones up to it were purged) and ``replica_seq``.

On a replica, every write (replicated or local) takes the next local sequence, while the
document keeps the master's version (so ETags agree across servers) and remembers the
master's sequence in ``source_seq``, which makes re-applying a change a no-op.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from app.store.base import (
    INDEXED_FIELDS,
    MASTER_ONLY_TYPES,
    Change,
    ChangeBatch,
    Document,
    DocumentExists,
    DocumentNotFound,
    EncodedChange,
    EncodedChangeBatch,
    FeedCompacted,
    JsonObject,
    Page,
    SequenceNotifier,
    SetAside,
    StoreUnavailable,
    VersionConflict,
    document_body,
    lookup_filter,
    refuse_repeats,
    require_positive,
)

log = logging.getLogger(__name__)

URL_PREFIX = "sqlite:///"
BUSY_TIMEOUT_MS = 5000
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
CHANGE_COLUMNS = "seq, id, type, version, deleted, body"
#: A change as the JSON text of ``Change.as_json`` (same keys, same order), written by
#: SQLite from the stored body text: nothing is parsed.
ENCODED_CHANGE_COLUMNS = """seq, id, type,
    '{"seq":' || seq || ',"id":' || json_quote(id) || ',"type":' || json_quote(type)
    || ',"version":' || json_quote(version)
    || ',"deleted":' || CASE WHEN deleted THEN 'true' ELSE 'false' END
    || ',"body":' || coalesce(body, 'null') || '}'"""
UPSERT = """
INSERT INTO docs (id, type, seq, version, source_seq, deleted, body)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    type = excluded.type, seq = excluded.seq, version = excluded.version,
    source_seq = excluded.source_seq, deleted = excluded.deleted, body = excluded.body
"""
IDS_IN_JSON = "id IN (SELECT value FROM json_each(?))"
#: ``meta`` keys of sequence marks: the prefix, then the time, fixed-width so they sort.
MARK_PREFIX = "seq_at:"
MASTER_ONLY_JSON = json.dumps(sorted(MASTER_ONLY_TYPES))

#: Primary result codes that mean "the file cannot take this now", not a bug in a query.
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


#: Result codes that mean the file itself is damaged.
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class SqliteStore:
    """The :class:`~app.store.base.Store` on one SQLite file.

    One connection serves every operation, and an ``asyncio.Lock`` is held for each
    transaction, reads included. aiosqlite runs a connection on a single thread, so
    statements are serial anyway; the lock keeps one coroutine's transaction from
    interleaving with another's, so a reader never sees a write that may still roll
    back and every multi-statement read is one snapshot. With WAL and
    ``synchronous=NORMAL`` a commit is cheap, so one writer at a time costs little.

    When the file cannot be written (read-only, disk full, I/O error) an operation
    raises :class:`StoreUnavailable` with SQLite's message and its transaction rolls
    back. After a failed read the connection is dropped and reopened by the next
    operation (after a failed write it is kept: it still reads), and one
    that SQLite opened read-only (it does so silently) is reopened before a write, so
    the store recovers as soon as the file is writable again.
    """

    def __init__(self, path: Path | str, *, set_aside_if_corrupt: bool = False) -> None:
        self.path = Path(path)
        #: A replica, which the master can always fill again: checked when it opens and,
        #: when corrupt, moved aside so that the store starts empty.
        self._set_aside_if_corrupt = set_aside_if_corrupt
        #: What was moved aside when the store opened, if anything.
        self.set_aside: SetAside | None = None
        self._lock = asyncio.Lock()
        self._conn: aiosqlite.Connection | None = None
        self._writable = False
        self._notifier: SequenceNotifier | None = None
        #: Moved on by every write transaction, under the lock, before it writes.
        self._generation = 0

    @classmethod
    def from_url(cls, url: str, *, set_aside_if_corrupt: bool = False) -> SqliteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        path = url.removeprefix(URL_PREFIX)
        if path == url or not path:
            raise ValueError(f"a SQLite database URL reads sqlite:///PATH, not {url!r}")
        return cls(path, set_aside_if_corrupt=set_aside_if_corrupt)

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock, self._unavailable_on_failure():
            if self._notifier is None:
                if self._set_aside_if_corrupt and self._conn is None:
                    await self._check_integrity()
                conn = await self._connection()
                self._notifier = SequenceNotifier(await _Transaction(conn).meta("last_seq"))

    async def close(self) -> None:
        async with self._lock:
            if self._notifier is not None:
                self._notifier.close()
                self._notifier = None
            await self._disconnect()

    # --- reads --------------------------------------------------------------------

    async def get(self, doc_id: str) -> Document:
        found = await self.get_many([doc_id])
        if doc_id not in found:
            raise DocumentNotFound(doc_id)
        return found[doc_id]

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        async with self._transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {DOCUMENT_COLUMNS} FROM docs WHERE deleted = 0 AND {IDS_IN_JSON}",
                (json.dumps(list(doc_ids)),),
            )
        return {doc.id: doc for doc in map(_document, rows)}

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        where = lookup_filter(doc_type, where, limit)
        lookup = _Lookup(doc_type, where)
        async with self._transaction() as tx:
            [(total,)] = await tx.fetch(*lookup.count())
            rows = await tx.fetch(*lookup.page(after, limit))
        items = [_document(row) for row in rows[:limit]]
        more = limit is not None and len(rows) > limit
        return Page(items=items, total=total, next_after=items[-1].id if more else None)

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        feed = await self._feed(CHANGE_COLUMNS, seq, limit, horizon)
        return ChangeBatch(
            changes=[_change(row) for row in feed.rows],
            last_seq=feed.last_seq,
            more=feed.more,
            horizon=feed.horizon,
        )

    @property
    def generation(self) -> int:
        return self._generation

    async def encoded_changes_since(
        self, seq: int, *, limit: int = 500, horizon: int = 0
    ) -> EncodedChangeBatch:
        feed = await self._feed(ENCODED_CHANGE_COLUMNS, seq, limit, horizon)
        return EncodedChangeBatch(
            changes=[EncodedChange(*row) for row in feed.rows],
            last_seq=feed.last_seq,
            more=feed.more,
            horizon=feed.horizon,
            generation=feed.generation,
        )

    async def _feed(self, columns: str, seq: int, limit: int, horizon: int) -> _FeedRows:
        """Up to ``limit`` rows of the feed after ``seq`` (``columns``, the sequence
        first), read in one snapshot; raises FeedCompacted."""
        require_positive("limit", limit)
        async with self._transaction() as tx:
            generation = self._generation  # a write moves it under the lock, before writing
            last_seq = await tx.meta("last_seq")
            purged_seq = await tx.meta("purged_seq")
            missed_purge = 0 < seq < purged_seq and purged_seq > horizon
            if missed_purge or seq > last_seq:
                raise FeedCompacted(seq, purged_seq)
            rows = await tx.fetch(
                f"SELECT {columns} FROM docs"
                " WHERE seq > ? AND type NOT IN (SELECT value FROM json_each(?))"
                " ORDER BY seq LIMIT ?",
                (seq, MASTER_ONLY_JSON, limit + 1),
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return _FeedRows(rows, rows[-1][0] if more else last_seq, more, purged_seq, generation)

    async def last_seq(self) -> int:
        async with self._transaction() as tx:
            return await tx.meta("last_seq")

    def subscribe(self) -> AsyncIterator[int]:
        return self._require_open().watch()

    # --- writes -------------------------------------------------------------------

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        [doc] = await self.insert_many([(doc_id, doc_type, body)])
        return doc

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        rows = [_Row(doc_id, doc_type, document_body(body)) for doc_id, doc_type, body in docs]
        ids = [row.id for row in rows]
        refuse_repeats(ids)
        async with self._transaction(write=True) as tx:
            existing = await tx.fetch(
                f"SELECT id FROM docs WHERE deleted = 0 AND {IDS_IN_JSON} LIMIT 1",
                (json.dumps(ids),),
            )
            if existing:
                raise DocumentExists(existing[0][0])
            return await tx.write(rows)

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        async with self._transaction(write=True) as tx:
            doc_type = await tx.check_version(doc_id, expected_version)
            [doc] = await tx.write([_Row(doc_id, doc_type, document_body(body))])
        return doc

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        async with self._transaction(write=True) as tx:
            [doc] = await tx.write([_Row(doc_id, doc_type, document_body(body))])
        return doc

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        rows = [_Row(doc_id, doc_type, document_body(body)) for doc_id, doc_type, body in docs]
        refuse_repeats([row.id for row in rows])
        async with self._transaction(write=True) as tx:
            return await tx.write(rows)

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        async with self._transaction(write=True) as tx:
            doc_type = await tx.check_version(doc_id, expected_version)
            await tx.write([_Row(doc_id, doc_type, None)])

    # --- replica ------------------------------------------------------------------

    async def apply_changes(self, changes: Sequence[Change], *, source_seq: int) -> None:
        newest: dict[str, Change] = {}
        for change in sorted(changes, key=lambda change: change.seq):
            newest[change.id] = change
        async with self._transaction(write=True) as tx:
            held = await tx.fetch(
                f"SELECT id, source_seq FROM docs WHERE {IDS_IN_JSON}", (json.dumps(list(newest)),)
            )
            held_seq: dict[str, int | None] = dict(held)
            await tx.write(
                [
                    _Row.replicated(change)
                    for change in newest.values()
                    if (held_seq.get(change.id) or 0) < change.seq
                ],
                returning=False,  # nobody reads them: a replica's catch-up writes thousands
            )
            await tx.advance_meta("replica_seq", source_seq)

    async def replica_seq(self) -> int:
        async with self._transaction() as tx:
            return await tx.meta("replica_seq")

    async def reset_replica(self) -> None:
        """Drop every document; readers of this store's own feed must resync too."""
        async with self._transaction(write=True) as tx:
            await tx.execute("DELETE FROM doc_index")
            await tx.execute("DELETE FROM docs")
            await tx.set_meta("purged_seq", await tx.allocate(1))
            await tx.set_meta("replica_seq", 0)

    # --- maintenance --------------------------------------------------------------

    async def purge_tombstones(self, older_than_seq: int) -> int:
        """Forget deletions written before ``older_than_seq``; return how many.

        A feed reader further behind than the newest purged deletion then gets
        :class:`FeedCompacted`, since it would otherwise miss that deletion.
        """
        async with self._transaction(write=True) as tx:
            return await tx.purge(older_than_seq)

    async def mark_sequence(self, at: float) -> int:
        """Record that every change up to the newest sequence was written by ``at``.

        Marks turn a retention in seconds into a sequence to purge below
        (:meth:`purge_deleted_before`) without a timestamp on every document; they
        live in ``meta`` so no schema change is needed. Returns the marked sequence.
        """
        async with self._transaction(write=True) as tx:
            seq = await tx.meta("last_seq")
            await tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_mark_key(at), seq)
            )
            return seq

    async def purge_deleted_before(self, before: float) -> int:
        """Forget deletions known to be older than ``before``; return how many.

        The newest mark at or before ``before`` bounds them: every tombstone up to its
        sequence was written by then. Older marks are dropped, that one is kept.
        """
        async with self._transaction(write=True) as tx:
            rows = await tx.fetch(
                "SELECT key, value FROM meta WHERE key > ? AND key <= ? ORDER BY key",
                (MARK_PREFIX, _mark_key(before)),
            )
            if not rows:
                return 0
            newest_key, marked_seq = rows[-1]
            await tx.execute(
                "DELETE FROM meta WHERE key > ? AND key < ?", (MARK_PREFIX, newest_key)
            )
            return await tx.purge(int(marked_seq) + 1)

    # --- plumbing -----------------------------------------------------------------

    async def _check_integrity(self) -> None:
        """Run SQLite's integrity check; move a corrupt file aside so that the store
        starts empty (README, "A corrupt replica")."""
        problems = await asyncio.to_thread(integrity_problems, self.path)
        if not problems:
            return
        at = datetime.now(UTC)
        moved_to = await asyncio.to_thread(move_aside, self.path, at)
        self.set_aside = SetAside(tuple(problems), str(moved_to), at)
        log.error(
            "the replica %s is corrupt (%s): moved to %s; starting from an empty replica, "
            "rebuilt from the master",
            self.path,
            "; ".join(problems[:3])
            + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""),
            moved_to,
        )

    @asynccontextmanager
    async def _transaction(self, *, write: bool = False) -> AsyncIterator[_Transaction]:
        """One transaction under the lock; publishes the new sequence once committed."""
        async with self._lock, self._unavailable_on_failure(keep_connection=write):
            notifier = self._require_open()
            conn = await self._connection(write=write)
            if write:
                self._generation += 1
            tx = _Transaction(conn)
            try:
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield tx
            except BaseException:
                await conn.rollback()  # queued behind any statement still running
                raise
            await asyncio.shield(_commit(conn, notifier, tx.last_seq))

    @asynccontextmanager
    async def _unavailable_on_failure(
        self, *, keep_connection: bool = False
    ) -> AsyncIterator[None]:
        """Map I/O failures to StoreUnavailable.

        A failed write keeps the connection: it still reads what is committed (a new
        one could not even open a file that refuses writes), and the next write tries
        again. A failed read drops it, to be reopened by the next operation.
        """
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            if not _is_unavailable(exc):
                raise
            if not keep_connection:
                await self._disconnect()
            raise StoreUnavailable(f"{self.path}: {exc}") from exc

    def _require_open(self) -> SequenceNotifier:
        if self._notifier is None:
            raise StoreUnavailable(f"{self.path}: the store is not open")
        return self._notifier

    async def _connection(self, *, write: bool = False) -> aiosqlite.Connection:
        if write and not self._writable:
            await self._disconnect()  # opened read-only: the file may be writable again
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                await _prepare(conn)
                self._writable = await _writable(conn)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.close()
        except sqlite3.Error as exc:
            log.warning("closing %s: %s", self.path, exc)


@dataclass(frozen=True, slots=True)
class _FeedRows:
    """A slice of the feed as rows: where the next read continues, whether more follow,
    the purge horizon and the store generation it was read at."""

    rows: list[Any]
    last_seq: int
    more: bool
    horizon: int
    generation: int


@dataclass(frozen=True, slots=True)
class _Row:
    """A document state to write: no body is a tombstone; no version takes the seq."""

    id: str
    type: str
    body: JsonObject | None
    version: str | None = None
    source_seq: int | None = None

    @classmethod
    def replicated(cls, change: Change) -> _Row:
        body = None if change.deleted else document_body(change.body or {})
        return cls(change.id, change.type, body, change.version, change.seq)


class _Transaction:
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

    async def purge(self, older_than_seq: int) -> int:
        """Delete the tombstones below ``older_than_seq`` and move ``purged_seq`` up."""
        [(count, newest)] = await self.fetch(
            "SELECT count(*), max(seq) FROM docs WHERE deleted = 1 AND seq < ?",
            (older_than_seq,),
        )
        if count:
            await self.execute("DELETE FROM docs WHERE deleted = 1 AND seq < ?", (older_than_seq,))
            await self.advance_meta("purged_seq", newest)
        return int(count)

    async def allocate(self, count: int) -> int:
        """Take ``count`` new sequences; return the first."""
        [(last,)] = await self.fetch(
            "UPDATE meta SET value = value + ? WHERE key = 'last_seq' RETURNING value", (count,)
        )
        self.last_seq = int(last)
        return self.last_seq - count + 1

    async def check_version(self, doc_id: str, expected_version: str | None) -> str:
        """Return the live document's type, or raise when it is missing or moved on."""
        rows = await self.fetch(
            "SELECT type, version FROM docs WHERE id = ? AND deleted = 0", (doc_id,)
        )
        if not rows:
            raise DocumentNotFound(doc_id)
        [(doc_type, version)] = rows
        if expected_version is not None and expected_version != version:
            raise VersionConflict(doc_id, expected_version, version)
        return str(doc_type)

    async def write(self, rows: Sequence[_Row], *, returning: bool = True) -> list[Document]:
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


async def _commit(
    conn: aiosqlite.Connection, notifier: SequenceNotifier, last_seq: int | None
) -> None:
    """Commit, then announce the new sequence: shielded, so a cancelled caller's
    committed write is still announced."""
    await conn.commit()
    if last_seq is not None:
        notifier.publish(last_seq)


async def _prepare(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # One server owns its file. Exclusive locking keeps the WAL index in memory rather
    # than in a memory-mapped -shm file: writing to a mapping of a file that became
    # unwritable (read-only remount, full disk) kills the process with SIGBUS, where
    # this way the write fails with an error the API answers as 503.
    await conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    [(version,)] = await conn.execute_fetchall("PRAGMA user_version")
    if version == 0:
        await conn.executescript(SCHEMA)
    elif version != SCHEMA_VERSION:
        raise StoreUnavailable(f"schema version {version} is not {SCHEMA_VERSION}")


def integrity_problems(path: Path) -> list[str]:
    """What ``PRAGMA integrity_check`` finds wrong with the database at ``path`` (at most
    100 problems); empty when it is whole or does not exist.

    Only corruption counts: a file that cannot be read for another reason (permissions,
    an I/O error) is left for the store's own open to report. Costs 30 to 60 ms for
    10,000 documents (bench/README.md §11).
    """
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in CORRUPT_CODES:
            return [str(exc)]
        return []
    finally:
        conn.close()
    # One row per problem, or one row of lines headed "*** in database main ***".
    found = [line for row in rows for line in str(row[0]).splitlines() if line[:3] != "***"]
    return [] if found == ["ok"] else found


def move_aside(path: Path, at: datetime) -> Path:
    """Rename the database at ``path`` and its journal files out of the way; returns the
    database's new path (its write-ahead log beside it, named as SQLite expects)."""
    moved = path.with_name(f"{path.name}.corrupt-{at:%Y%m%dT%H%M%SZ}")
    for suffix in ("-wal", "-shm", "-journal", ""):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(moved.with_name(moved.name + suffix))
    return moved


def _mark_key(at: float) -> str:
    return f"{MARK_PREFIX}{max(at, 0.0):020.3f}"


def _is_unavailable(exc: sqlite3.Error | OSError) -> bool:
    if isinstance(exc, OSError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in UNAVAILABLE_CODES


async def _writable(conn: aiosqlite.Connection) -> bool:
    """Whether SQLite opened the file for writing: it silently opens read-only otherwise."""
    try:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("UPDATE meta SET value = value WHERE key = 'last_seq'")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
            raise
        return False
    finally:
        await conn.rollback()
    return True


@dataclass(frozen=True, slots=True)
class _Lookup:
    """The SQL of a find: live documents of a type whose indexed fields all match."""

    doc_type: str
    where: Mapping[str, str]

    def count(self) -> tuple[str, list[Any]]:
        condition, params = self._condition()
        return f"SELECT count(*) FROM docs WHERE {condition}", params

    def page(self, after: str | None, limit: int | None) -> tuple[str, list[Any]]:
        """One page by id; one row beyond ``limit`` tells whether more follow."""
        condition, params = self._condition()
        sql = f"SELECT {DOCUMENT_COLUMNS} FROM docs WHERE {condition}"
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit + 1)
        return sql, params

    def _condition(self) -> tuple[str, list[Any]]:
        conditions = ["type = ?", "deleted = 0"]  # a literal 0: the partial index applies
        params: list[Any] = [self.doc_type]
        for field, value in sorted(self.where.items()):
            conditions.append("id IN (SELECT id FROM doc_index WHERE field = ? AND value = ?)")
            params += [field, value]
        return " AND ".join(conditions), params


def _index_entries(doc_id: str, doc_type: str, body: JsonObject) -> Iterator[tuple[str, str, str]]:
    """``(field, value, id)`` for each string value of an indexed field, list elements too."""
    for field in INDEXED_FIELDS.get(doc_type, ()):
        value = body.get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield field, item, doc_id


def _encode(body: JsonObject) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _document(row: Sequence[Any]) -> Document:
    doc_id, doc_type, version, seq, body = row
    return Document(id=doc_id, type=doc_type, version=version, body=json.loads(body), seq=seq)


def _change(row: Sequence[Any]) -> Change:
    seq, doc_id, doc_type, version, deleted, body = row
    return Change(
        seq=seq,
        id=doc_id,
        type=doc_type,
        version=version,
        deleted=bool(deleted),
        body=None if body is None else json.loads(body),
    )
