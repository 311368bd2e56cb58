"""The embedded store's file: one connection, one transaction at a time, failures mapped.

Documents, the change feed and the replica each run their statements through
:meth:`Database.transaction`. What it takes to do that safely on a file that may turn
read-only, fill up or be damaged under a running server is here, once, so that none
of them has to think about it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from app.store.base import SequenceNotifier, StoreUnavailable
from app.store.sqlite.tables import Transaction, create_schema

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000

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


class Database:
    """One SQLite file behind one connection, a transaction at a time.

    An ``asyncio.Lock`` is held for each transaction, reads included. aiosqlite runs a
    connection on a single thread, so statements are serial anyway; the lock keeps one
    coroutine's transaction from interleaving with another's, so a reader never sees a
    write that may still roll back and every multi-statement read is one snapshot.
    With WAL and ``synchronous=NORMAL`` a commit is cheap, so one writer at a time
    costs little.

    When the file cannot be written (read-only, disk full, I/O error) an operation
    raises :class:`StoreUnavailable` with SQLite's message and its transaction rolls
    back. After a failed read the connection is dropped and reopened by the next
    operation (after a failed write it is kept: it still reads), and one
    that SQLite opened read-only (it does so silently) is reopened before a write, so
    the store recovers as soon as the file is writable again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._conn: aiosqlite.Connection | None = None
        self._writable = False
        self._notifier: SequenceNotifier | None = None
        #: Moved on by every write transaction, under the lock, before it writes.
        self._generation = 0

    @property
    def generation(self) -> int:
        """Moves on with every write transaction: a read at one generation reads the
        same until it moves."""
        return self._generation

    async def open(self, *, check: Callable[[], Awaitable[None]] | None = None) -> None:
        """Open the file, creating it and its tables if missing; idempotent.

        ``check`` runs first when the file is not open yet, before SQLite touches it.
        """
        async with self._lock, self._unavailable_on_failure():
            if self._notifier is None:
                if check is not None and self._conn is None:
                    await check()
                conn = await self._connection()
                self._notifier = SequenceNotifier(await Transaction(conn).meta("last_seq"))

    async def close(self) -> None:
        """Close the connection and end every :meth:`watch`; idempotent."""
        async with self._lock:
            if self._notifier is not None:
                self._notifier.close()
                self._notifier = None
            await self._disconnect()

    def watch(self) -> AsyncIterator[int]:
        """The newest sequence now, then after each committed write, until closed."""
        return self._require_open().watch()

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[Transaction]:
        """One transaction under the lock; publishes the new sequence once committed."""
        async with self._lock, self._unavailable_on_failure(keep_connection=write):
            notifier = self._require_open()
            conn = await self._connection(write=write)
            if write:
                self._generation += 1
            tx = Transaction(conn)
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
    await create_schema(conn)


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
