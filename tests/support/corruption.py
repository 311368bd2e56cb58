"""Damage done to a SQLite file in place, as a failing disk would do it."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def corrupt_a_page(database: Path, table: str) -> int:
    """Overwrite the b-tree page header of ``table``'s root page with nonsense (a cell
    count far beyond what the page holds); returns the page number."""
    assert not database.with_name(database.name + "-wal").exists(), "the log is folded in"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    with database.open("r+b") as raw:
        raw.seek((root - 1) * page_size)
        header = bytearray(raw.read(8))
        header[3:5] = (0xFFFF).to_bytes(2, "big")  # number of cells on the page
        raw.seek((root - 1) * page_size)
        raw.write(header)
    return int(root)


def spoil_the_document(database: Path, needle: bytes) -> int:
    """Make the stored JSON of a document unreadable, byte for byte in place: the pages
    stay whole, so SQLite's integrity check passes and only reading it fails."""
    raw = database.read_bytes()
    count = raw.count(needle)
    assert count, f"{needle!r} is not in {database}"
    spoiled = needle.replace(b":", b";", 1)
    database.write_bytes(raw.replace(needle, spoiled))
    return count
