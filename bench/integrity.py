"""What the replica's integrity check costs an edge's boot (bench/README.md §10).

``python -m bench.integrity`` builds edge replicas of 1,000, 10,000 and 100,000
documents the way an edge does (``SqliteStore.apply_changes`` in batches of 1,000): a
mix of systems (each holding five modules, so the lookup index has rows), modules with
settings, control events and users. For each it times ``PRAGMA integrity_check`` (what
the edge runs as its replica opens) and ``PRAGMA quick_check`` (the cheaper check it
could run) with the file in the page cache and, with ``--cold`` (root: it empties the
whole machine's page cache before each run), read from disk; then the whole
``SqliteStore.open()`` of a replica with and without the check. Writes
``bench/results/integrity.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.store.base import Change, JsonObject
from app.store.sqlite import SqliteStore
from bench.report import write_json

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (1_000, 10_000, 100_000)
REPEATS = 5
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def documents(count: int) -> list[tuple[str, str, JsonObject]]:
    """``count`` documents of an estate, in the proportions of a replica: per ten, one
    system, five modules, three control events and a user."""
    docs: list[tuple[str, str, JsonObject]] = []
    for n in range(count):
        group, kind = divmod(n, 10)
        edge = f"edge-{group % 300:04d}"
        if kind == 0:
            modules = [f"mod-{group:06d}-{m}" for m in range(5)]
            body: JsonObject = {"name": f"Room {group}", "edge_control_id": edge}
            docs.append((f"sys-{group:06d}", "system", {**body, "modules": modules}))
        elif kind <= 5:
            settings = {"ip": f"10.{group % 250}.{kind}.{group % 200}", "port": 4999}
            body = {"driver_id": f"drv-{kind}", "name": "Display", "settings": settings}
            docs.append((f"mod-{group:06d}-{kind - 1}", "module", body))
        elif kind <= 8:
            body = {
                "edge_id": edge,
                "kind": "connected",
                "controller": "edge",
                "epoch": group,
                "at": f"2026-01-01T00:{group % 60:02d}:00+00:00",
                "reason": "edge connected: the master did not control the location",
            }
            docs.append((f"evt::{edge}::{group:06d}{kind}", "control_event", body))
        else:
            body = {"name": f"Operator {group}", "email": f"op{group}@estate.example"}
            docs.append((f"user-{group:06d}", "user", body))
    return docs


async def build(path: Path, count: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        changes = [
            Change(seq=n + 1, id=doc_id, type=doc_type, version=str(n + 1), deleted=False, body=b)
            for n, (doc_id, doc_type, b) in enumerate(documents(count))
        ]
        for start in range(0, count, 1000):
            batch = changes[start : start + 1000]
            await store.apply_changes(batch, source_seq=batch[-1].seq)
    finally:
        await store.close()


def drop_caches() -> bool:
    """Empty the kernel's page cache (root only); False where this process may not."""
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def check_ms(path: Path, pragma: str, *, cold: bool) -> float | None:
    """Milliseconds ``PRAGMA pragma`` takes on ``path``, connection included."""
    if cold and not drop_caches():
        return None
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        [(result,)] = conn.execute(f"PRAGMA {pragma}").fetchall()
    assert result == "ok", result
    return (time.perf_counter() - started) * 1000


async def open_ms(path: Path, *, checked: bool) -> float:
    started = time.perf_counter()
    store = SqliteStore(path, set_aside_if_corrupt=checked)
    await store.open()
    elapsed = (time.perf_counter() - started) * 1000
    await store.close()
    assert store.set_aside is None
    return elapsed


def median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if known else None


async def measure(
    workdir: Path, sizes: tuple[int, ...], repeats: int, *, cold: bool
) -> dict[str, Any]:
    rows = []
    for count in sizes:
        path = workdir / f"replica-{count}.db"
        await build(path, count)
        row: dict[str, Any] = {"documents": count, "file_mb": round(path.stat().st_size / 2**20, 1)}
        for pragma in ("integrity_check", "quick_check"):
            for from_disk in (False, True) if cold else (False,):
                runs = [check_ms(path, pragma, cold=from_disk) for _ in range(repeats)]
                row[f"{pragma}_{'cold' if from_disk else 'warm'}_ms"] = median(runs)
        row["open_ms"] = median([await open_ms(path, checked=False) for _ in range(repeats)])
        row["open_checked_ms"] = median([await open_ms(path, checked=True) for _ in range(repeats)])
        rows.append(row)
        print(row)
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sqlite": sqlite3.sqlite_version,
        "repeats": repeats,
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "cold_cache": cold and drop_caches(),
        "replicas": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.integrity", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--cold", action="store_true", help="also read from disk (root)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as workdir:
        result = asyncio.run(
            measure(Path(workdir), tuple(args.sizes), args.repeats, cold=args.cold)
        )
    write_json(args.results / "integrity.json", result)


if __name__ == "__main__":
    main()
