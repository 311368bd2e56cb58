"""An edge's replica in the embedded store: the master's changes applied, the sequence
applied up to, and the integrity check that sets a corrupt copy aside at open.

Only an edge's store does this, and it writes differently from an API request: every
write (replicated or local) takes the next local sequence, while the document keeps
the master's version (so ETags agree across servers) and remembers the master's
sequence in ``source_seq``, which makes re-applying a change a no-op. And because the
master can always fill a replica again, a damaged one is moved aside rather than
refused (README, "A corrupt replica").
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.store.base import Change, SetAside, document_body
from app.store.sqlite.database import Database
from app.store.sqlite.tables import IDS_IN_JSON, Row

log = logging.getLogger(__name__)

#: Result codes that mean the file itself is damaged.
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class Replica:
    """Applies the master's changes to this file and keeps the sequence it applied up to."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: What was moved aside when the store opened, if anything.
        self.set_aside: SetAside | None = None

    async def apply_changes(self, changes: Sequence[Change], *, source_seq: int) -> None:
        newest: dict[str, Change] = {}
        for change in sorted(changes, key=lambda change: change.seq):
            newest[change.id] = change
        async with self._db.transaction(write=True) as tx:
            held = await tx.fetch(
                f"SELECT id, source_seq FROM docs WHERE {IDS_IN_JSON}", (json.dumps(list(newest)),)
            )
            held_seq: dict[str, int | None] = dict(held)
            await tx.write(
                [
                    _replicated(change)
                    for change in newest.values()
                    if (held_seq.get(change.id) or 0) < change.seq
                ],
                returning=False,  # nobody reads them: a replica's catch-up writes thousands
            )
            await tx.advance_meta("replica_seq", source_seq)

    async def replica_seq(self) -> int:
        async with self._db.transaction() as tx:
            return await tx.meta("replica_seq")

    async def reset(self) -> None:
        """Drop every document; readers of this store's own feed must resync too."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute("DELETE FROM doc_index")
            await tx.execute("DELETE FROM docs")
            await tx.set_meta("purged_seq", await tx.allocate(1))
            await tx.set_meta("replica_seq", 0)

    async def set_aside_if_corrupt(self) -> None:
        """Run SQLite's integrity check on the file, before it is opened; move a corrupt
        one aside so that the store starts empty, to be rebuilt from the master."""
        path = self._db.path
        problems = await asyncio.to_thread(integrity_problems, path)
        if not problems:
            return
        at = datetime.now(UTC)
        moved_to = await asyncio.to_thread(move_aside, path, at)
        self.set_aside = SetAside(tuple(problems), str(moved_to), at)
        log.error(
            "the replica %s is corrupt (%s): moved to %s; starting from an empty replica, "
            "rebuilt from the master",
            path,
            "; ".join(problems[:3])
            + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""),
            moved_to,
        )


def _replicated(change: Change) -> Row:
    """The master's document state as this replica stores it: the master's version, and
    its sequence as ``source_seq``."""
    body = None if change.deleted else document_body(change.body or {})
    return Row(change.id, change.type, body, change.version, change.seq)


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
