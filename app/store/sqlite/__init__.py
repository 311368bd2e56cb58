"""The embedded store: one SQLite file per server, in WAL mode, through aiosqlite.

One module per job, each readable on its own, importing only those above it:

- ``tables``: the schema, and how every part writes a document state into it;
- ``database``: the file behind one connection, a transaction at a time, its I/O
  failures answered as :class:`~app.store.base.StoreUnavailable`;
- ``documents``: reads, compare-and-swap writes and lookups by indexed field;
- ``feed``: the change feed, parsed or as JSON text, and its compaction;
- ``replica``: an edge's copy of the master's documents, and the integrity check that
  sets a corrupt one aside when it opens;
- ``store``: :class:`SqliteStore`, which puts them behind the store protocols.
"""

from __future__ import annotations

from app.store.sqlite.replica import integrity_problems, move_aside
from app.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore", "integrity_problems", "move_aside"]
