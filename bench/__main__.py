"""``python -m bench``: run the benchmarks, write JSON results, PNG plots and a table."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    boot,
    failover,
    fleet,
    hotpaths,
    link,
    machine,
    profiling,
    replication,
    rest,
    status,
    stores,
)
from bench.plots import PLOTS
from bench.report import targets_table, write_json
from bench.support import run

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each scenario to run."""

    link_samples: int
    concurrencies: tuple[int, ...]
    link_trial_s: float
    link_rounds: int
    rest_samples: int
    failover_timeouts: tuple[float, ...]
    failover_repeats: int
    boot_sizes: tuple[int, ...]
    boot_timeout_s: float
    profile_s: float
    profile_calls: int
    profile_modules: int
    profile_edges: int
    fleet_sizes: tuple[int, ...]
    fleet_timeout_s: float
    fleet_idle_s: float
    fleet_fanouts: int
    fleet_budget_s: float
    fleet_settle_s: float
    replication_sizes: tuple[int, ...]
    hotpath_count: int
    hotpath_rounds: int
    status_sizes: tuple[int, ...]
    status_watch_s: float
    store_writes: int
    store_concurrency: int
    store_samples: int


FULL = Plan(
    link_samples=3000,
    concurrencies=(1, 10, 100),
    link_trial_s=1.5,
    link_rounds=3,
    rest_samples=1000,
    failover_timeouts=(1.0, 2.0, 5.0),
    failover_repeats=3,
    boot_sizes=(1_000, 10_000, 50_000),
    boot_timeout_s=300.0,
    profile_s=3.0,
    profile_calls=2000,
    profile_modules=10_000,
    profile_edges=300,
    fleet_sizes=(100, 300, 1000),
    fleet_timeout_s=5.0,
    fleet_idle_s=5.0,
    fleet_fanouts=3,
    fleet_budget_s=300.0,
    fleet_settle_s=3.0,
    replication_sizes=(10_000, 100_000),
    hotpath_count=20_000,
    hotpath_rounds=5,
    status_sizes=(100, 1000),
    status_watch_s=3.0,
    store_writes=2000,
    store_concurrency=16,
    store_samples=500,
)

SMOKE = Plan(
    link_samples=50,
    concurrencies=(1, 10),
    link_trial_s=0.2,
    link_rounds=1,
    rest_samples=20,
    failover_timeouts=(0.5,),
    failover_repeats=1,
    boot_sizes=(100, 300, 600),
    boot_timeout_s=60.0,
    profile_s=0.5,
    profile_calls=50,
    profile_modules=500,
    profile_edges=10,
    fleet_sizes=(3, 6, 9),
    fleet_timeout_s=0.5,
    fleet_idle_s=0.5,
    fleet_fanouts=1,
    fleet_budget_s=30.0,
    fleet_settle_s=0.2,
    replication_sizes=(500, 2_000),
    hotpath_count=200,
    hotpath_rounds=1,
    status_sizes=(5, 20),
    status_watch_s=0.3,
    store_writes=50,
    store_concurrency=4,
    store_samples=20,
)

Scenario = Callable[[Path, Plan], Coroutine[Any, Any, dict[str, Any]]]

SCENARIOS: dict[str, Scenario] = {
    "hotpaths": lambda workdir, plan: hotpaths.measure(
        workdir, count=plan.hotpath_count, rounds=plan.hotpath_rounds
    ),
    "link": lambda workdir, plan: link.measure(
        workdir,
        samples=plan.link_samples,
        concurrencies=plan.concurrencies,
        duration=plan.link_trial_s,
        rounds=plan.link_rounds,
    ),
    "rest": lambda workdir, plan: rest.measure(workdir, samples=plan.rest_samples),
    "failover": lambda workdir, plan: failover.measure(
        workdir, timeouts=plan.failover_timeouts, repeats=plan.failover_repeats
    ),
    "boot": lambda workdir, plan: boot.measure(
        workdir, plan.boot_sizes, timeout=plan.boot_timeout_s
    ),
    "fleet": lambda workdir, plan: fleet.measure(
        workdir,
        plan.fleet_sizes,
        timeout=plan.fleet_timeout_s,
        idle_s=plan.fleet_idle_s,
        fanouts=plan.fleet_fanouts,
        budget=plan.fleet_budget_s,
        settle_s=plan.fleet_settle_s,
    ),
    "replication": lambda workdir, plan: replication.measure(
        workdir, plan.replication_sizes, timeout=300.0
    ),
    "status": lambda workdir, plan: status.measure(
        workdir, plan.status_sizes, watch_s=plan.status_watch_s
    ),
    "stores": lambda workdir, plan: stores.measure(
        workdir,
        writes=plan.store_writes,
        concurrency=plan.store_concurrency,
        samples=plan.store_samples,
    ),
}


def run_scenario(name: str, plan: Plan, results: Path) -> dict[str, Any]:
    load = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
        result = run(SCENARIOS[name](Path(workdir), plan))
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_average"] = {
        "before": [round(value, 2) for value in load],
        "after": [round(value, 2) for value in os.getloadavg()],
    }
    write_json(results / f"{name}.json", result)
    PLOTS[name](result, results / f"{name}.png")
    return result


def run_profiles(plan: Plan, results: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as workdir:
        profiles = run(
            profiling.profile_all(
                Path(workdir),
                duration=plan.profile_s,
                calls=plan.profile_calls,
                modules=plan.profile_modules,
                edges=plan.profile_edges,
            )
        )
    for name, text in profiles.items():
        (results / f"profile_{name}.txt").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    parser.add_argument(
        "--results",
        type=Path,
        help="where to write (bench/results; bench/results/tmp with --smoke)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also write cProfile reports (profile_*.txt)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = SMOKE if args.smoke else FULL
    results: Path = args.results or (RESULTS / "tmp" if args.smoke else RESULTS)
    results.mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine": machine.describe(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "plan": asdict(plan),
        "targets": {},
        "figures": {},
    }
    for name in args.only or list(SCENARIOS):
        print(f"{name}: running", flush=True)
        result = run_scenario(name, plan, results)
        summary["targets"][name] = result.get("targets", [])
        if "summary" in result:
            summary["figures"][name] = result["summary"]
        print(f"{name}: done in {result['seconds']} s", flush=True)
    if args.profile:
        print("profiles: running", flush=True)
        run_profiles(plan, results)
    summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(results / "summary.json", summary)
    table = targets_table(t for targets in summary["targets"].values() for t in targets)
    (results / "summary.md").write_text(table + "\n")
    print(f"\n{table}\n\nresults in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
