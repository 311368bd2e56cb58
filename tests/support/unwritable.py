"""Making a running server's SQLite database refuse writes, as a full or read-only disk would."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def chattr(flag: str, paths: list[Path]) -> None:
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0 and flag == "+i":
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    done.check_returncode()


@contextlib.contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    """Files made immutable (``chattr +i``) for a while.

    The server runs as root here, and for root only the immutable flag makes a file it
    already holds open unwritable.
    """
    if os.geteuid() != 0:
        pytest.skip("only root can make a file another process holds open unwritable")
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    chattr("+i", paths)
    try:
        yield
    finally:
        chattr("-i", paths)


def database_files(database: Path) -> list[Path]:
    """The database file and its write-ahead log, those that exist."""
    files = [database, database.with_name(database.name + "-wal")]
    return [path for path in files if path.exists()]
