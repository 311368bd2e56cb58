"""``python -m tests.soak.faults``: a fault-schedule run, then its check (tests/soak/README.md).

Starts a master, edges and simulated devices as real processes on loopback, applies
the faults a seed draws for ``--minutes``, records the history, checks it and writes
the summary (``bench/results/faults.json`` by default). ``--plan`` prints the schedule
without running it; ``--check HISTORY`` checks a recorded history again. Exits 1 when
the check found a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from tests.soak.faults.actions import Actions
from tests.soak.faults.check import Report, check, describe, timeline
from tests.soak.faults.cluster import Certificates, Site, Timings
from tests.soak.faults.history import End, FaultEvent, History, HistoryWriter, Location, RunInfo
from tests.soak.faults.history import read as read_history
from tests.soak.faults.observe import Devices, Observer
from tests.soak.faults.plan import (
    EDGE,
    KINDS,
    MASTER,
    VOCABULARY,
    Shape,
    Step,
    Target,
    make_plan,
)

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "bench" / "results" / "faults.json"
#: Seconds the site may take to settle, at the start and after the last fault.
SETTLE_S = 90.0
#: How much longer than ``timeout`` a location may be without a controller (README).
NO_CONTROLLER_SLACK_S = 2.0
#: A fault's action that takes longer is recorded as failed (a stuck action must not
#: hold the schedule up).
ACTION_TIMEOUT_S = 30.0


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.faults", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the schedule")
    parser.add_argument("--seed", type=int, help="draws the schedule (random when not given)")
    parser.add_argument("--edges", type=int, default=2, help="edge locations (at least 2)")
    parser.add_argument("--timeout", type=float, default=3.0, help="each location's timeout")
    parser.add_argument("--max-active", type=int, default=3, help="lasting faults at once")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=list(KINDS),
        metavar="KIND",
        help=f"draw only these kinds of fault ({', '.join(KINDS)})",
    )
    parser.add_argument("--ping", type=float, default=0.3, help="ENGINE_PING_INTERVAL_S")
    parser.add_argument("--retry", type=float, default=0.3, help="ENGINE_LINK_RETRY_S")
    parser.add_argument(
        "--witness-timeout", type=float, default=1.0, help="ENGINE_WITNESS_TIMEOUT_S"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the summary goes (JSON)"
    )
    parser.add_argument("--workdir", type=Path, help="servers' files and the history (kept)")
    parser.add_argument("--plan", action="store_true", help="print the schedule and stop")
    parser.add_argument("--check", type=Path, metavar="HISTORY", help="check a history again")
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("FROM", "TO"),
        help="with --check: print everything recorded between these run seconds",
    )
    args = parser.parse_args(argv)
    if args.edges < 2:
        parser.error("--edges: at least 2")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


def replay_command(args: argparse.Namespace) -> str:
    """The command that draws the same schedule on the same site."""
    command = (
        f"python -m tests.soak.faults --seed {args.seed} --minutes {args.minutes:g} "
        f"--edges {args.edges} --timeout {args.timeout:g} --max-active {args.max_active}"
    )
    if args.kinds:
        command += f" --kinds {' '.join(args.kinds)}"
    defaults = arguments(["--seed", "0"])
    for option in ("ping", "retry", "witness_timeout"):
        if getattr(args, option) != getattr(defaults, option):
            command += f" --{option.replace('_', '-')} {getattr(args, option):g}"
    return command


def targets(edges: int) -> list[Target]:
    return [Target("master", MASTER), *(Target(f"edge{n}", EDGE) for n in range(1, edges + 1))]


def schedule(args: argparse.Namespace) -> list[Step]:
    shape = Shape(seconds=args.minutes * 60, timeout=args.timeout, max_active=args.max_active)
    kinds = [KINDS[name] for name in args.kinds] if args.kinds else list(VOCABULARY)
    return make_plan(args.seed, targets(args.edges), shape, kinds)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.check is not None:
        history = read_history(args.check)
        if args.window is not None:
            print("\n".join(timeline(history, *args.window)))
            return 0
        report = check(history)
        print_report(history, report)
        return 1 if report.violations else 0
    plan = schedule(args)
    if args.plan:
        for step in plan:
            params = f" {step.params}" if step.params else ""
            lasting = f" for {step.duration:.2f} s" if step.duration else ""
            print(f"t+{step.at:7.2f} #{step.id} {step.kind} {step.target}{lasting}{params}")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"engine-faults-{args.seed}-"))
    print(
        f"faults: seed {args.seed}, {len(plan)} faults over {args.minutes:g} min; "
        f"servers and history in {workdir}",
        flush=True,
    )
    started = datetime.now(UTC)
    load = os.getloadavg()
    asyncio.run(soak(args, plan, workdir))
    history = read_history(workdir / "history.jsonl")
    report = check(history)
    print_report(history, report)
    summary = summarize(args, history, report, started, load, workdir)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"faults: summary in {args.results}")
    return 1 if report.violations else 0


async def soak(args: argparse.Namespace, plan: list[Step], workdir: Path) -> None:
    history = HistoryWriter(workdir / "history.jsonl")
    timings = Timings(
        ping_interval_s=args.ping, link_retry_s=args.retry, witness_timeout_s=args.witness_timeout
    )
    site = Site(
        workdir,
        timings=timings,
        timeout=args.timeout,
        certificates=Certificates(workdir / "tls"),
        history=history,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.soak.faults.devices",
        "--count",
        str(args.edges),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    devices = Devices(process.stdout, history)
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    following: asyncio.Task[None] | None = None
    observer = Observer(site, history)
    try:
        ports = await devices.ports()
        following = asyncio.create_task(devices.follow())
        await site.start_master()
        for n in range(1, args.edges + 1):
            await site.add_edge(f"edge{n}", f"dev{n}", ports[f"dev{n}"])
        if not await site.wait(
            lambda: settled(site, devices, edges_hold=True),
            SETTLE_S,
            "the edges to hold their devices",
        ):
            raise SystemExit(
                "faults: the site never settled; see the servers' logs in " + str(workdir)
            )
        t0 = time.monotonic()
        history.write(run_info(args, site, t0))
        observer.start()
        await execute(plan, Actions(site), history, t0, args.minutes * 60)
        await site.wait(
            lambda: settled(site, devices), SETTLE_S, "the site to settle after the faults"
        )
        await asyncio.sleep(args.timeout + NO_CONTROLLER_SLACK_S)  # watched calm once more
        await observer.decisions()
        history.write(End(time.monotonic()))
    finally:
        await observer.stop()
        await site.close()
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()
        if following is not None:
            await following
        history.close()


def settled(site: Site, devices: Devices, *, edges_hold: bool = False) -> bool:
    """Every server ready, every device held by exactly one of them (its edge, if asked)."""
    if not all(server.ready for server in site.servers if server.role != "clone"):
        return False
    for edge in site.edges.values():
        holders = devices.holders(edge.device)
        allowed = {edge.server.pid} if edges_hold else {edge.server.pid, site.master.pid}
        if len(holders) != 1 or holders[0] not in allowed:
            return False
    return True


def run_info(args: argparse.Namespace, site: Site, t0: float) -> RunInfo:
    locations = tuple(
        Location(edge.name, edge.edge_id, edge.server.name, edge.device, args.timeout)
        for edge in site.edges.values()
    )
    return RunInfo(
        t=t0,
        seed=args.seed,
        command=replay_command(args),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        ping_interval_s=args.ping,
        witness_timeout_s=args.witness_timeout,
        locations=locations,
        masters=(site.master.name,),
        frozen_grace_s=args.ping + args.witness_timeout,
        no_controller_slack_s=NO_CONTROLLER_SLACK_S,
    )


async def execute(
    plan: list[Step], actions: Actions, history: HistoryWriter, t0: float, seconds: float
) -> None:
    """Each step at its time, each healed at its time or when the schedule ends."""
    over = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    for step in plan:
        await asyncio.sleep(max(0.0, t0 + step.at - time.monotonic()))
        running.append(asyncio.create_task(_fault(step, actions, history, t0, over)))
        print(f"faults: t+{step.at:.1f} #{step.id} {step.kind} {step.target}", flush=True)
    await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
    over.set()
    await asyncio.gather(*running)


async def _fault(
    step: Step, actions: Actions, history: HistoryWriter, t0: float, over: asyncio.Event
) -> None:
    action = actions.table[step.kind]
    instant = action.heal is None
    detail: dict[str, Any] = dict(step.params)
    if not instant:
        detail["planned_s"] = round(step.duration, 2)
    at = time.monotonic()
    try:
        detail |= await asyncio.wait_for(action.apply(step), ACTION_TIMEOUT_S)
        ok = True
    except Exception as exc:
        detail["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    history.write(FaultEvent(at, step.id, step.kind, step.target, "apply", ok, instant, detail))
    if action.heal is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(over.wait(), max(0.0, t0 + step.heal_at - time.monotonic()))
    at = time.monotonic()
    healed: dict[str, Any] = {}
    try:
        healed = await asyncio.wait_for(action.heal(step), ACTION_TIMEOUT_S)
        ok = True
    except Exception as exc:
        healed["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    history.write(FaultEvent(at, step.id, step.kind, step.target, "heal", ok, False, healed))


def print_report(history: History, report: Report) -> None:
    run = history.run
    print(f"\nfaults: seed {run.seed}, {history.end - run.t:.0f} s checked; replay: {run.command}")
    print(f"faults: examined {report.examined}")
    for violation in report.violations:
        print(describe(violation, run.t))
    counts = {kind: n for kind, n in report.by_kind().items() if n}
    print(f"faults: {len(report.violations)} violations {counts or ''}".rstrip())


def summarize(
    args: argparse.Namespace,
    history: History,
    report: Report,
    started: datetime,
    load: tuple[float, float, float],
    workdir: Path,
) -> dict[str, Any]:
    applied: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for fault in history.faults:
        if fault.phase == "apply":
            (applied if fault.ok else failed)[fault.kind] += 1
    return {
        "scenario": "faults",
        "seed": args.seed,
        "command": history.run.command,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(history.end - history.run.t, 1),
        "machine": machine.describe(),
        "load_average": {
            "before": [round(v, 2) for v in load],
            "after": [round(v, 2) for v in os.getloadavg()],
        },
        "site": {
            "edges": args.edges,
            "timeout_s": args.timeout,
            "ping_interval_s": args.ping,
            "link_retry_s": args.retry,
            "witness_timeout_s": args.witness_timeout,
            "max_active": args.max_active,
            "frozen_grace_s": history.run.frozen_grace_s,
            "no_controller_slack_s": history.run.no_controller_slack_s,
        },
        "faults_applied": sum(applied.values()),
        "faults": {kind: {"applied": applied[kind], "failed": failed[kind]} for kind in KINDS},
        "violations": len(report.violations),
        "violations_by_kind": report.by_kind(),
        "examined": report.examined,
        "violation_list": [
            {
                "kind": v.kind,
                "location": v.location,
                "start_s": round(v.start - history.run.t, 2),
                "seconds": round(v.seconds, 3),
                "detail": v.detail,
                "faults": [f"#{f.id} {f.kind} {f.target}" for f in v.faults],
            }
            for v in report.violations
        ],
        "history": str(workdir / "history.jsonl"),
    }


if __name__ == "__main__":
    sys.exit(main())
