"""Document writes per second and change-feed latency: etcd beside SQLite (figure 9).

Each backend gets the same work, in this process:

- **writes/s**: ``upsert`` of a ~300-byte document, one at a time (each acknowledged
  before the next: what one supervisor's decisions cost), then ``concurrency`` writers
  at once (what a master under load sees);
- **feed latency**: from the start of a write until a follower sees it in
  ``changes_since``, woken by ``subscribe`` as the master's watchers and the replica
  feed are. On SQLite the follower is the writing store itself (one process owns the
  file); on etcd it is a second store, as another master would be, so the figure
  includes etcd's watch and the follower's sync read.

etcd is a three-member cluster on loopback (Debian's ``etcd-server``, data on tmpfs
where there is one, ``tests/support/etcd.py``); its figures are Raft commits over
three members of one machine, not a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from app.store import Store, open_store
from bench.report import Target
from tests.support.etcd import etcd_available, running_cluster

BODY = {
    "name": "Meeting room display",
    "driver_id": "driver-display",
    "ip": "10.20.30.40",
    "port": 4352,
    "settings": {"input": "hdmi1", "volume": 30, "note": "." * 150},
}
#: etcd writes per second below this would make a leader's decisions the bottleneck.
ETCD_WRITES_LIMIT = 200.0
#: A change a standby sees later than this would make its view of the store stale.
FEED_LATENCY_LIMIT_MS = 50.0


async def measure(workdir: Path, *, writes: int, concurrency: int, samples: int) -> dict[str, Any]:
    backends: dict[str, dict[str, Any]] = {}
    async with _sqlite(workdir) as (writer, follower):
        backends["sqlite"] = await _measure_backend(writer, follower, writes, concurrency, samples)
    if etcd_available():
        with running_cluster(workdir / "etcd") as cluster:
            url = cluster.url("bench")
            async with _opened(url) as writer, _opened(url) as follower:
                backends["etcd"] = await _measure_backend(
                    writer, follower, writes, concurrency, samples
                )
    etcd = backends.get("etcd")
    targets = [
        Target(
            "etcd store: sequential document writes per second",
            etcd["writes_per_s"]["sequential"] if etcd else None,
            ETCD_WRITES_LIMIT,
            "writes/s",
            at_most=False,
        ),
        Target(
            "etcd store: change-feed latency to another master, p99",
            etcd["feed_latency_ms"]["p99"] if etcd else None,
            FEED_LATENCY_LIMIT_MS,
            "ms",
            at_most=True,
        ),
    ]
    return {
        "backends": backends,
        "etcd_installed": etcd_available(),
        "etcd_version": _etcd_version(),
        "plan": {"writes": writes, "concurrency": concurrency, "samples": samples},
        "targets": [target.as_json() for target in targets],
        "summary": {
            name: {
                "sequential_writes_per_s": round(result["writes_per_s"]["sequential"]),
                "concurrent_writes_per_s": round(result["writes_per_s"]["concurrent"]),
                "feed_latency_p50_ms": result["feed_latency_ms"]["p50"],
                "feed_latency_p99_ms": result["feed_latency_ms"]["p99"],
            }
            for name, result in backends.items()
        },
    }


async def _measure_backend(
    writer: Store, follower: Store, writes: int, concurrency: int, samples: int
) -> dict[str, Any]:
    started = time.perf_counter()
    for n in range(writes):
        await writer.upsert(f"seq-{n:06d}", "module", BODY)
    sequential = writes / (time.perf_counter() - started)

    queue = iter(range(writes))

    async def write_some() -> None:
        for n in queue:
            await writer.upsert(f"con-{n:06d}", "module", BODY)

    started = time.perf_counter()
    await asyncio.gather(*(write_some() for _ in range(concurrency)))
    concurrent = writes / (time.perf_counter() - started)

    latencies = await _feed_latencies(writer, follower, samples)
    return {
        "writes_per_s": {"sequential": round(sequential, 1), "concurrent": round(concurrent, 1)},
        "feed_latency_ms": _percentiles(latencies),
    }


async def _feed_latencies(writer: Store, follower: Store, samples: int) -> list[float]:
    """Milliseconds from a write's start to the follower reading it from its feed."""
    seen: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}
    updates = follower.subscribe()
    seq = await anext(updates)

    async def follow() -> None:
        nonlocal seq
        async for _ in updates:
            batch = await follower.changes_since(seq)
            now = time.perf_counter()
            for change in batch.changes:
                seen.setdefault(change.id, now)
                if change.id in arrived:
                    arrived[change.id].set()
            seq = batch.last_seq

    following = asyncio.create_task(follow())
    latencies: list[float] = []
    try:
        for n in range(samples):
            doc_id = f"feed-{n:06d}"
            arrived[doc_id] = asyncio.Event()
            started = time.perf_counter()
            await writer.upsert(doc_id, "module", BODY)
            await asyncio.wait_for(arrived[doc_id].wait(), 10)
            latencies.append((seen[doc_id] - started) * 1000)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    return latencies


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quantiles = statistics.quantiles(ordered, n=100)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(quantiles[89], 3),
        "p99": round(quantiles[98], 3),
        "max": round(ordered[-1], 3),
    }


@contextlib.asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Store]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _sqlite(workdir: Path) -> AsyncIterator[tuple[Store, Store]]:
    async with _opened(f"sqlite:///{workdir / 'bench.db'}") as store:
        yield store, store


def _etcd_version() -> str | None:
    if not shutil.which("etcd"):
        return None
    found = subprocess.run(["etcd", "--version"], capture_output=True, text=True, check=False)
    return found.stdout.splitlines()[0] if found.stdout else None
