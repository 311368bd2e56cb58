"""The embedded store's change feed: every write in sequence order, parsed or as JSON text.

The ``docs`` table ordered by ``seq`` is the feed, so it is compacted by construction.
Its readers are not API requests but replicas catching up (the master answering
``replica.changes`` for its edges), with rules of their own: master-only documents
are left out, a reader further behind than a tombstone purge is told to resync, and
the text is handed out without parsing a body. Purging old tombstones, and the
sequence marks that turn a retention in seconds into a sequence, are the feed's
compaction, so they are here too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.base import (
    MASTER_ONLY_TYPES,
    Change,
    ChangeBatch,
    EncodedChange,
    EncodedChangeBatch,
    FeedCompacted,
    require_positive,
)
from app.store.sqlite.database import Database
from app.store.sqlite.tables import Transaction

CHANGE_COLUMNS = "seq, id, type, version, deleted, body"
#: A change as the JSON text of ``Change.as_json`` (same keys, same order), written by
#: SQLite from the stored body text: nothing is parsed.
ENCODED_CHANGE_COLUMNS = """seq, id, type,
    '{"seq":' || seq || ',"id":' || json_quote(id) || ',"type":' || json_quote(type)
    || ',"version":' || json_quote(version)
    || ',"deleted":' || CASE WHEN deleted THEN 'true' ELSE 'false' END
    || ',"body":' || coalesce(body, 'null') || '}'"""
MASTER_ONLY_JSON = json.dumps(sorted(MASTER_ONLY_TYPES))
#: ``meta`` keys of sequence marks: the prefix, then the time, fixed-width so they sort.
MARK_PREFIX = "seq_at:"


class ChangeFeed:
    """Reads the feed in bounded slices, one snapshot each, and compacts it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        feed = await self._read(CHANGE_COLUMNS, seq, limit, horizon)
        return ChangeBatch(
            changes=[_change(row) for row in feed.rows],
            last_seq=feed.last_seq,
            more=feed.more,
            horizon=feed.horizon,
        )

    async def encoded_changes_since(
        self, seq: int, *, limit: int = 500, horizon: int = 0
    ) -> EncodedChangeBatch:
        feed = await self._read(ENCODED_CHANGE_COLUMNS, seq, limit, horizon)
        return EncodedChangeBatch(
            changes=[EncodedChange(*row) for row in feed.rows],
            last_seq=feed.last_seq,
            more=feed.more,
            horizon=feed.horizon,
            generation=feed.generation,
        )

    async def last_seq(self) -> int:
        async with self._db.transaction() as tx:
            return await tx.meta("last_seq")

    def subscribe(self) -> AsyncIterator[int]:
        return self._db.watch()

    async def purge_tombstones(self, older_than_seq: int) -> int:
        """Forget deletions written before ``older_than_seq``; return how many.

        A feed reader further behind than the newest purged deletion then gets
        :class:`FeedCompacted`, since it would otherwise miss that deletion.
        """
        async with self._db.transaction(write=True) as tx:
            return await _purge(tx, older_than_seq)

    async def mark_sequence(self, at: float) -> int:
        """Record that every change up to the newest sequence was written by ``at``.

        Marks turn a retention in seconds into a sequence to purge below
        (:meth:`purge_deleted_before`) without a timestamp on every document; they
        live in ``meta`` so no schema change is needed. Returns the marked sequence.
        """
        async with self._db.transaction(write=True) as tx:
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
        async with self._db.transaction(write=True) as tx:
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
            return await _purge(tx, int(marked_seq) + 1)

    async def _read(self, columns: str, seq: int, limit: int, horizon: int) -> _FeedRows:
        """Up to ``limit`` rows of the feed after ``seq`` (``columns``, the sequence
        first), read in one snapshot; raises FeedCompacted."""
        require_positive("limit", limit)
        async with self._db.transaction() as tx:
            generation = self._db.generation  # a write moves it under the lock, before writing
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


@dataclass(frozen=True, slots=True)
class _FeedRows:
    """A slice of the feed as rows: where the next read continues, whether more follow,
    the purge horizon and the store generation it was read at."""

    rows: list[Any]
    last_seq: int
    more: bool
    horizon: int
    generation: int


async def _purge(tx: Transaction, older_than_seq: int) -> int:
    """Delete the tombstones below ``older_than_seq`` and move ``purged_seq`` up."""
    [(count, newest)] = await tx.fetch(
        "SELECT count(*), max(seq) FROM docs WHERE deleted = 1 AND seq < ?", (older_than_seq,)
    )
    if count:
        await tx.execute("DELETE FROM docs WHERE deleted = 1 AND seq < ?", (older_than_seq,))
        await tx.advance_meta("purged_seq", newest)
    return int(count)


def _mark_key(at: float) -> str:
    return f"{MARK_PREFIX}{max(at, 0.0):020.3f}"


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
