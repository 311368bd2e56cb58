"""The operator's view of a large estate: the status page with many locations (figure 9).

For each size, a master (`python -m app serve`) over a SQLite file seeded with that many
edge locations (one room and one module each, failover off so the master runs nothing
and the figures are the status page's own). No edge is connected. Measured:

* `GET /api/status`: the snapshot's size and time (median of ten), and its time right
  after a configuration write (the board brings its cache up to date first);
* the master's CPU (from `/proc`) while 0, 1 and 5 status pages follow
  `GET /api/status/stream`: what each open page costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app.node_process import NodeProcess, free_port
from bench.fleet import cpu_seconds, documents, ready, seed
from bench.report import Target
from bench.support import AUTH, TOKEN
from tests.support.wait import wait_until as wait_for

SNAPSHOTS = 10
WRITES = 5
VIEWERS = (0, 1, 5)
#: Pages open at once on the master of the largest estate.
MANY_VIEWERS = 5
#: Five pages may cost at most this times one: they share one view of the locations.
SHARED_VIEW_LIMIT = 1.5


async def status_once(workdir: Path, count: int, *, watch_s: float) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    docs, _ = documents(count, device_port=9, timeout=30.0)
    await seed(
        workdir / "engine.db",
        [(i, t, {**b, "failover": False} if t == "edge" else b) for i, t, b in docs],
    )
    master = NodeProcess(
        "master", workdir, free_port(), {"ENGINE_ADMIN_TOKEN": TOKEN, "ENGINE_BOOT_WAIT_S": "0.2"}
    )
    await master.start()
    try:
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=60) as http:
            await wait_for(lambda: ready(http, master), timeout=60, message="the master")
            await http.get("/api/status")  # the first load reads every location's history
            sizes, times = [], []
            for _ in range(SNAPSHOTS):
                started = time.perf_counter()
                response = await http.get("/api/status")
                times.append(time.perf_counter() - started)
                sizes.append(len(response.content))
            after_write = []
            for n in range(WRITES):
                await http.patch("/api/systems/sys-00000", json={"description": f"change {n}"})
                started = time.perf_counter()
                await http.get("/api/status")
                after_write.append(time.perf_counter() - started)
            cpu = {
                str(viewers): await _cpu_with(http, master, viewers, watch_s) for viewers in VIEWERS
            }
    finally:
        await master.stop()
    return {
        "locations": count,
        "snapshot_kib": round(statistics.median(sizes) / 1024, 1),
        "snapshot_ms": round(statistics.median(times) * 1000, 2),
        "snapshot_after_write_ms": round(statistics.median(after_write) * 1000, 2),
        "cpu_percent_by_viewers": cpu,
    }


async def _cpu_with(
    http: httpx.AsyncClient, master: NodeProcess, viewers: int, watch_s: float
) -> float:
    """Percent of a core the master uses while ``viewers`` status pages are open."""
    opened = asyncio.Event()
    count = 0

    async def follow() -> None:
        nonlocal count
        async with http.stream("GET", "/api/status/stream") as response:
            async for _ in response.aiter_bytes():
                count += 1
                if count >= viewers:
                    opened.set()

    pages = [asyncio.create_task(follow()) for _ in range(viewers)]
    try:
        if viewers:
            await asyncio.wait_for(opened.wait(), timeout=30)
        await asyncio.sleep(0.5)  # past the first snapshots
        cpu_before, started = cpu_seconds(master.pid), time.monotonic()
        await asyncio.sleep(watch_s)
        return round(100 * (cpu_seconds(master.pid) - cpu_before) / (time.monotonic() - started), 2)
    finally:
        for page in pages:
            page.cancel()
        for page in pages:
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await page


async def measure(workdir: Path, sizes: Sequence[int], *, watch_s: float) -> dict[str, Any]:
    runs = [await status_once(workdir / f"n{count}", count, watch_s=watch_s) for count in sizes]
    largest = runs[-1]
    cpu = largest["cpu_percent_by_viewers"]
    one, many = cpu["1"] - cpu["0"], cpu[str(MANY_VIEWERS)] - cpu["0"]
    ratio = many / one if one > 0 else None
    targets = [
        Target(
            f"status pages: master CPU of {MANY_VIEWERS} open / of 1, "
            f"{largest['locations']:,} locations",
            ratio,
            SHARED_VIEW_LIMIT,
            "x",
            at_most=True,
        )
    ]
    return {
        "runs": runs,
        "summary": {str(run["locations"]): run for run in runs},
        "targets": [t.as_json() for t in targets],
    }
