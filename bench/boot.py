"""Master boot time and memory against the number of modules (figure 5).

Each size gets a fresh SQLite file seeded directly with ``SqliteStore.insert_many``:
one Echo driver and N modules, 100 to a master system, as the catalog would write
them. The master runs as ``python -m app serve``. Boot time runs from starting the
process to the first 200 of ``/api/ready``; the boot summary's own ``boot_seconds``
leaves out interpreter start-up and imports. Memory is the process's RSS then.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app.models import DriverFields, ModuleFields, SystemFields
from app.node_process import NodeProcess, free_port
from app.store.base import JsonObject
from app.store.sqlite import SqliteStore
from bench.report import Target
from bench.stats import LineFit, marginal_costs
from bench.support import ECHO_DRIVER

MODULES_PER_SYSTEM = 100
TARGET_MODULES = 10_000
TARGET_READY_S = 5.0
#: Linear growth: the cost of a module in the largest step is at most this times
#: its cost in the smallest.
LINEARITY_LIMIT = 1.5
POLL_INTERVAL_S = 0.01


def documents(count: int) -> list[tuple[str, str, JsonObject]]:
    """A driver, ``count`` Echo modules and the master systems holding them."""
    docs: list[tuple[str, str, JsonObject]] = [
        ("drv-echo", "driver", DriverFields(**ECHO_DRIVER).model_dump(mode="json"))
    ]
    module_ids = [f"mod-{n:06d}" for n in range(count)]
    module = ModuleFields(driver_id="drv-echo", name="Echo").model_dump(mode="json")
    docs += [(module_id, "module", module) for module_id in module_ids]
    for first in range(0, count, MODULES_PER_SYSTEM):
        members = module_ids[first : first + MODULES_PER_SYSTEM]
        system = SystemFields(name=f"Room {first // MODULES_PER_SYSTEM}", modules=members)
        docs.append((f"sys-{first // MODULES_PER_SYSTEM:05d}", "system", system.model_dump()))
    return docs


async def seed(path: Path, count: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.insert_many(documents(count))
    finally:
        await store.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def boot_once(workdir: Path, drivers: Path, count: int, timeout: float) -> dict[str, Any]:
    """Boot a master over ``count`` modules; its figures, or ``timed_out``."""
    workdir.mkdir(parents=True)
    await seed(workdir / "engine.db", count)
    master = NodeProcess(
        "master",
        workdir,
        free_port(),
        {"ENGINE_BOOT_WAIT_S": "0", "ENGINE_DRIVERS_PATH": str(drivers)},
    )
    started = time.monotonic()
    await master.start()
    try:
        summary = await _ready_summary(master, timeout)
        ready_s = time.monotonic() - started
        if summary is None:
            return {"modules": count, "timed_out": True, "timeout_s": timeout}
        return {
            "modules": count,
            "ready_s": round(ready_s, 4),
            "boot_s": summary["boot_seconds"],
            "rss_mib": round(rss_mib(master.pid), 2),
            "modules_running": summary["modules_running"],
        }
    finally:
        await master.stop()


async def _ready_summary(master: NodeProcess, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5.0) as http:
        while time.monotonic() < deadline:
            if not master.running:
                raise RuntimeError(f"the master exited during boot:\n{master.log_tail()}")
            try:
                response = await http.get(f"{master.url}/api/ready")
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                summary: dict[str, Any] = response.json()
                return summary
            await asyncio.sleep(POLL_INTERVAL_S)
    return None


async def measure(workdir: Path, sizes: Sequence[int], timeout: float) -> dict[str, Any]:
    drivers = workdir / "drivers"
    # An empty master first: it prepares the driver checkout the others share, warms
    # the file cache, and gives the fixed cost every boot pays.
    baseline = await boot_once(workdir / "empty", drivers, 0, timeout)
    runs = [baseline]
    for size in sizes:
        run = await boot_once(workdir / f"modules-{size}", drivers, size, timeout)
        runs.append(run)
        if run.get("timed_out"):
            break
    return {"runs": runs, **verdicts(runs)}


def verdicts(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Straight-line fits, the cost of one more module between sizes, and the targets.

    Linear growth means one more module costs the same at every size: the cost of a
    module in the last step (say 10,000 → 50,000) over its cost in the first (1,000 →
    10,000) stays near 1. Time uses the boot summary's ``boot_seconds``, which leaves
    out the interpreter's start-up noise.
    """
    done = [r for r in runs if not r.get("timed_out")]
    sizes = [float(r["modules"]) for r in done]
    fits = {key: LineFit.of(sizes, [float(r[key]) for r in done]) for key in ("ready_s", "rss_mib")}
    loaded = [r for r in done if r["modules"] > 0]
    steps = [(a["modules"], b["modules"]) for a, b in itertools.pairwise(loaded)]
    costs = {
        key: marginal_costs([(r["modules"], float(r[key])) for r in loaded])
        for key in ("boot_s", "rss_mib")
    }
    at_target = next((r for r in runs if r["modules"] == TARGET_MODULES), None)
    targets = [
        Target(
            f"master ready with {TARGET_MODULES:,} modules",
            None if at_target is None else at_target.get("ready_s"),
            TARGET_READY_S,
            "s",
            at_most=True,
        ),
        Target(
            "boot time of one more module, last step / first step",
            _growth(costs["boot_s"]),
            LINEARITY_LIMIT,
            "x",
            at_most=True,
        ),
        Target(
            "memory of one more module, last step / first step",
            _growth(costs["rss_mib"]),
            LINEARITY_LIMIT,
            "x",
            at_most=True,
        ),
    ]
    return {
        "fits": {
            key: {"per_module": fit.slope, "fixed": fit.intercept, "r2": fit.r2}
            for key, fit in fits.items()
        },
        "per_module": [
            {
                "from": first,
                "to": last,
                "boot_ms": round(boot * 1000, 4),
                "rss_kib": round(rss * 1024, 2),
            }
            for (first, last), boot, rss in zip(
                steps, costs["boot_s"], costs["rss_mib"], strict=True
            )
        ],
        "targets": [t.as_json() for t in targets],
    }


def _growth(costs: Sequence[float]) -> float | None:
    if len(costs) < 2 or costs[0] <= 0:
        return None
    return costs[-1] / costs[0]
