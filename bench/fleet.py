"""Hundreds to a thousand locations on one master (figure 6).

The master is a real ``python -m app serve`` process over a SQLite file seeded with N
edge locations, each with its secret, one system and one ``TcpLine`` module whose
device is a line-protocol simulator in this process. The edges are simulated, many
to a process (`bench.fleet_edge`): each runs the edge's own uplink (handshake with
its own secret, pings, retries), follows the replica feed, answers control orders
and pushes status events. For each N:

1. **connect and catch up**: all N edges connect at once to a master waiting for
   them at boot, and each applies the whole feed into its empty replica;
2. **configuration fan-out**: one ``PATCH`` at the master, timed until every edge
   has applied the change it announced (three times);
3. **master restart** with every edge connected: SIGTERM, start again, time until
   every edge is linked again with its location in its own control and the master
   answers ready; no edge may be told to let its devices go;
4. **idle**: the master's RSS and CPU while the edges only ping and report a status
   change every ``STATUS_EVERY_S`` seconds each;
5. **mass failover**: SIGKILL every edge process at once; time until the master has
   opened the device connection of every location (each counted at the device).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from app.models import DriverFields, EdgeFields, ModuleFields, SystemFields
from app.node_process import HOST, ROOT, NodeProcess, free_port
from app.services.catalog import secret_id
from app.sim.line_device import LineDevice
from app.store.base import JsonObject
from app.store.sqlite import SqliteStore
from bench.boot import rss_mib
from bench.fleet_edge import STATUS_EVERY_S
from bench.report import Target
from bench.stats import LineFit, marginal_costs
from bench.support import AUTH, TOKEN
from tests.support.wait import wait_until as wait_for

LINE_DRIVER = {"name": "Display", "file": "generic/tcp_line.py", "class_name": "TcpLine"}
QUICK_RECONNECT = {"reconnect_delay": 0.05, "reconnect_max": 0.5}
EDGE_PROCESSES = 2
LINK_RETRY_S = 0.5

MEMORY_PER_EDGE_KIB = 256.0
CPU_PER_EDGE_PERCENT = 0.1
FANOUT_LIMIT_S = 2.0
FAILOVER_MARGIN_S = 2.0
RESTART_LIMIT_S = 10.0
#: How long the idle phase waits for the restart's writes to reach every replica (at
#: 1,000 edges that copy can take minutes: README §6); past it, idle starts anyway.
RESTART_COPY_WAIT_S = 30.0
#: Linear growth: the cost of one more edge from the middle to the largest fleet is
#: at most this times its cost from the smallest to the middle one.
LINEARITY_LIMIT = 1.5


def documents(count: int, device_port: int, timeout: float) -> tuple[list[Any], list[list[str]]]:
    """The seeded store's documents, and ``[edge_id, secret, module_id, index]`` per location."""
    docs: list[tuple[str, str, JsonObject]] = [
        ("drv-line", "driver", DriverFields(**LINE_DRIVER).model_dump(mode="json"))
    ]
    entries = []
    for n in range(count):
        edge_id, system_id, module_id = f"edge-{n:05d}", f"sys-{n:05d}", f"mod-{n:05d}"
        secret = secrets.token_urlsafe(32)
        edge = EdgeFields(name=f"Site {n}", timeout=timeout)
        system = SystemFields(name=f"Lobby {n}", edge_control_id=edge_id, modules=[module_id])
        module = ModuleFields(
            driver_id="drv-line",
            name="Display",
            ip=HOST,
            port=device_port,
            settings=QUICK_RECONNECT,
        )
        docs += [
            (edge_id, "edge", edge.model_dump(mode="json")),
            (secret_id(edge_id), "edge_secret", {"secret": secret}),
            (system_id, "system", system.model_dump(mode="json")),
            (module_id, "module", module.model_dump(mode="json")),
        ]
        entries.append([edge_id, secret, module_id, str(n)])
    return docs, entries


async def seed(path: Path, docs: Sequence[tuple[str, str, JsonObject]]) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.insert_many(docs)
    finally:
        await store.close()


def open_files(pid: int) -> int:
    """File descriptors a process holds open (sockets, the store, pipes)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def link_bytes(master_port: int) -> tuple[int, int] | None:
    """TCP payload bytes the edges' links have sent and received so far, summed over
    their sockets (``ss``'s ``bytes_sent``/``bytes_received``, from the edges' side:
    each edge connects from its own 127.1.x.y address); None without ``ss``."""
    query = f"( dport = :{master_port} and src 127.1.0.0/16 )"
    try:
        process = await asyncio.create_subprocess_exec(
            "ss", "-tinH", "state", "established", query, stdout=asyncio.subprocess.PIPE
        )
    except OSError:
        return None
    out, _ = await process.communicate()
    if process.returncode != 0:
        return None
    text = out.decode()
    sent = sum(int(n) for n in re.findall(r"\bbytes_sent:(\d+)", text))
    received = sum(int(n) for n in re.findall(r"\bbytes_received:(\d+)", text))
    return sent, received


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EdgeProcess:
    """One ``bench.fleet_edge`` process and its line-by-line conversation."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, master_url: str, entries_file: Path) -> EdgeProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fleet_edge",
            master_url,
            str(entries_file),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        edges = cls(process)
        await edges.reply("started", timeout=60)
        return edges

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def reply(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"a fleet edge process exited before {event!r}")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise RuntimeError(f"expected {event!r} from a fleet edge process, got {message}")
        return message

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


class Fleet:
    """The edge processes, commanded together."""

    def __init__(self, processes: list[EdgeProcess]) -> None:
        self.processes = processes

    async def ask(
        self, command: dict[str, Any], event: str, timeout: float
    ) -> list[dict[str, Any]]:
        for process in self.processes:
            await process.send(command)
        return list(await asyncio.gather(*(p.reply(event, timeout) for p in self.processes)))

    async def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for reply in await self.ask({"cmd": "counts"}, "counts", 30):
            for key, value in reply.items():
                if key != "event":
                    totals[key] = totals.get(key, 0) + int(value)
        return totals

    async def kill(self) -> None:
        for process in self.processes:
            if process.process.returncode is None:
                process.process.send_signal(signal.SIGKILL)
        for process in self.processes:
            await process.kill()


#: How long the master's store sequence must stay put to count as settled.
SEQ_SETTLE_S = 1.0


async def store_seq(http: httpx.AsyncClient, master: NodeProcess) -> int:
    """The master's newest store sequence, from its metrics."""
    response = await http.get(f"{master.url}/metrics")
    response.raise_for_status()
    found = re.search(r"^engine_store_seq (\S+)$", response.text, re.MULTILINE)
    if found is None:
        raise RuntimeError("the master's metrics carry no engine_store_seq")
    return int(float(found.group(1)))


async def settled_seq(http: httpx.AsyncClient, master: NodeProcess) -> int:
    """The master's store sequence once its metric stops moving.

    The metric follows the configuration watcher, which may still be working through
    the admissions' writes when the master turns ready: a sequence read at once can be
    older than what the restart wrote.
    """
    seq = await store_seq(http, master)
    while True:
        await asyncio.sleep(SEQ_SETTLE_S)
        newer = await store_seq(http, master)
        if newer == seq:
            return seq
        seq = newer


async def ready(http: httpx.AsyncClient, master: NodeProcess) -> bool:
    if not master.running:
        raise RuntimeError(f"the master exited:\n{master.log_tail()}")
    try:
        return (await http.get(f"{master.url}/api/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def fleet_once(
    workdir: Path,
    count: int,
    *,
    timeout: float,
    idle_s: float,
    fanouts: int,
    budget: float,
    settle_s: float = 2.0,
) -> dict[str, Any]:
    """Every figure for one fleet size."""
    result: dict[str, Any] = {"edges": count, "timeout_s": timeout}
    async with FleetSite(workdir, count, timeout=timeout, budget=budget) as site:
        master, http, device = site.master, site.http, site.device
        result["documents"] = site.documents
        try:
            result["rss_mib_no_edges"] = round(rss_mib(master.pid), 2)
            result["open_files_no_edges"] = open_files(master.pid)
            fleet = await site.spawn_edges()

            # 1. connect and catch up from empty replicas
            cpu_before, started = cpu_seconds(master.pid), time.monotonic()
            caught = await fleet.ask({"cmd": "connect"}, "caught_up", budget)
            result["connect_catch_up_s"] = round(max(r["at"] for r in caught) - started, 3)
            result["connect_catch_up_master_cpu_s"] = round(cpu_seconds(master.pid) - cpu_before, 2)
            result["connect_master_cpu_ms_per_edge"] = round(
                result["connect_catch_up_master_cpu_s"] * 1000 / count, 2
            )
            result["replica_documents"] = min(r["documents"] for r in caught)
            await wait_for(lambda: ready(http, master), timeout=budget, message="the master ready")
            result["rss_mib_caught_up"] = round(rss_mib(master.pid), 2)
            # A master swamped by the catch-up may have dropped links and taken locations
            # over meanwhile: count that, and start the next steps from a settled fleet.
            settled_from = time.monotonic()
            await fleet.ask({"cmd": "await_settled"}, "settled", budget)
            await device.wait_for(lambda: device.active_connections == 0, budget)
            counts = await fleet.counts()
            result["connect_storm"] = {
                "settled_after_s": round(time.monotonic() - settled_from, 3),
                "links_dropped": counts["links"] - count,
                "locations_taken_over": device.total_connections,
            }
            taken_before = device.total_connections

            # 2. configuration fan-out
            fanout = []
            for n in range(fanouts):
                await fleet.ask({"cmd": "mark"}, "marked", 30)
                changed = time.monotonic()
                response = await http.patch(
                    f"{master.url}/api/edges/edge-00000", json={"description": f"change {n}"}
                )
                response.raise_for_status()
                advanced = await fleet.ask({"cmd": "await_advance"}, "advanced", budget)
                fanout.append(round(max(r["at"] for r in advanced) - changed, 4))
            result["fanout_s"] = fanout

            # 3. master restart with every edge connected
            before = await fleet.counts()
            stopped = time.monotonic()
            await master.stop()
            restarted = time.monotonic()
            await master.start()
            relinked = await fleet.ask(
                {"cmd": "await_relinked", "since": stopped}, "relinked", budget
            )
            await wait_for(lambda: ready(http, master), timeout=budget, message="the master ready")
            ready_at = time.monotonic()
            released = (await fleet.counts())["released"] - before["released"]
            # What the restart wrote (each admission's control state and event) reaches
            # every replica: N changes per edge, N² in all, by design (README §6).
            seq = await settled_seq(http, master)
            synced = await fleet.ask(
                {"cmd": "await_seq", "seq": seq, "within": RESTART_COPY_WAIT_S}, "at_seq", budget
            )
            caught_up = [r["at"] for r in synced]
            after = await fleet.counts()
            result["restart"] = {
                "stop_s": round(restarted - stopped, 3),
                "all_linked_s": round(max(r["at"] for r in relinked) - stopped, 3),
                "ready_s": round(ready_at - stopped, 3),
                "negotiated_online_s": round(
                    max(ready_at, *(r["at"] for r in relinked)) - stopped, 3
                ),
                "devices_released": released,
                "replicas_caught_up_s": (
                    None if None in caught_up else round(max(caught_up) - stopped, 3)
                ),
                "replicas_behind": sum(int(r.get("behind", 0)) for r in synced),
                "changes_received_per_edge": round(
                    (after["changes_received"] - before["changes_received"]) / count, 1
                ),
                "master_device_connections": device.total_connections - taken_before,
            }

            # 4. idle
            await asyncio.sleep(settle_s)
            bytes_before = await link_bytes(master.port)
            cpu_before, idle_from = cpu_seconds(master.pid), time.monotonic()
            await asyncio.sleep(idle_s)
            elapsed = time.monotonic() - idle_from
            cpu = (cpu_seconds(master.pid) - cpu_before) / elapsed
            bytes_after = await link_bytes(master.port)
            result["idle"] = {
                "seconds": idle_s,
                "master_cpu_percent": round(cpu * 100, 3),
                "cpu_percent_per_edge": round(cpu * 100 / count, 5),
                "rss_mib": round(rss_mib(master.pid), 2),
                "open_files": open_files(master.pid),
            }
            if bytes_before is not None and bytes_after is not None:
                sent = bytes_after[0] - bytes_before[0]
                received = bytes_after[1] - bytes_before[1]
                result["idle"]["link_bytes_per_edge_s"] = {
                    "edge_to_master": round(sent / count / elapsed, 1),
                    "master_to_edge": round(received / count / elapsed, 1),
                }
            result["memory_kib_per_edge"] = round(
                (result["idle"]["rss_mib"] - result["rss_mib_no_edges"]) * 1024 / count, 2
            )
            result["open_files_per_edge"] = round(
                (result["idle"]["open_files"] - result["open_files_no_edges"]) / count, 3
            )
            result["fleet_counts"] = await fleet.counts()

            # 5. mass failover
            opened_before = device.total_connections
            killed = time.monotonic()
            await fleet.kill()
            await device.wait_for(
                lambda: device.total_connections - opened_before >= count, timeout + budget
            )
            opens = [at for at, what, _ in device.events if what == "open" and at > killed]
            result["failover"] = {
                "all_taken_over_s": round(opens[count - 1] - killed, 3),
                "first_s": round(opens[0] - killed, 3),
                "device_connections": len(opens),
                "active_connections": device.active_connections,
            }
            result["rss_mib_master_in_control"] = round(rss_mib(master.pid), 2)
        except Exception as exc:  # recorded: the other sizes still run
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["master_log_tail"] = master.log_tail(30)
    return result


class FleetSite:
    """A seeded master process, its device simulator and, once spawned, the edges."""

    def __init__(
        self,
        workdir: Path,
        count: int,
        *,
        timeout: float,
        budget: float,
        master_kind: type[NodeProcess] = NodeProcess,
    ) -> None:
        self.workdir = workdir
        self.count = count
        self.timeout = timeout
        self.budget = budget
        self.device = LineDevice(HOST, 0, name="displays")
        self.master = master_kind(
            "master",
            workdir,
            free_port(),
            {
                "ENGINE_ADMIN_TOKEN": TOKEN,
                "ENGINE_BOOT_WAIT_S": str(budget),
                "ENGINE_LINK_RETRY_S": str(LINK_RETRY_S),
                "ENGINE_PING_INTERVAL_S": "1",
            },
        )
        self.http = httpx.AsyncClient(timeout=30.0, headers=AUTH)
        self.fleet: Fleet | None = None
        self.entries: list[list[str]] = []
        self.documents = 0

    async def __aenter__(self) -> FleetSite:
        self.workdir.mkdir(parents=True)
        await self.device.start()
        docs, self.entries = documents(self.count, self.device.port, self.timeout)
        self.documents = len(docs)
        await seed(self.workdir / "engine.db", docs)
        await self.master.start()
        await wait_for(
            lambda: _answers(self.http, self.master), timeout=60, message="the master to listen"
        )
        await asyncio.sleep(0.5)
        return self

    async def spawn_edges(self) -> Fleet:
        """Start the edge processes (not yet connected)."""
        files = []
        for i in range(EDGE_PROCESSES):
            files.append(self.workdir / f"edges-{i}.json")
            files[-1].write_text(json.dumps(self.entries[i::EDGE_PROCESSES]))
        self.fleet = Fleet(
            list(await asyncio.gather(*(EdgeProcess.start(self.master.url, f) for f in files)))
        )
        return self.fleet

    async def __aexit__(self, *_: object) -> None:
        if self.fleet is not None:
            await self.fleet.kill()
        await self.master.stop()
        await self.device.stop()
        await self.http.aclose()


async def idle_profile_run(
    workdir: Path, count: int, seconds: float, master_kind: type[NodeProcess]
) -> NodeProcess:
    """A master with ``count`` edges linked and caught up, then idle for ``seconds``.

    Returns the stopped master process (a profiled kind has written its profile).
    """
    async with FleetSite(
        workdir, count, timeout=60.0, budget=120.0, master_kind=master_kind
    ) as site:
        fleet = await site.spawn_edges()
        await fleet.ask({"cmd": "connect"}, "caught_up", 120)
        await wait_for(lambda: ready(site.http, site.master), timeout=120, message="ready")
        await asyncio.sleep(seconds)
    return site.master


async def _answers(http: httpx.AsyncClient, master: NodeProcess) -> bool:
    if not master.running:
        raise RuntimeError(f"the master exited:\n{master.log_tail()}")
    try:
        return (await http.get(f"{master.url}/api/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def measure(
    workdir: Path,
    sizes: Sequence[int],
    *,
    timeout: float,
    idle_s: float,
    fanouts: int,
    budget: float,
    settle_s: float,
) -> dict[str, Any]:
    runs = []
    for count in sizes:
        runs.append(
            await fleet_once(
                workdir / f"fleet-{count}",
                count,
                timeout=timeout,
                idle_s=idle_s,
                fanouts=fanouts,
                budget=budget,
                settle_s=settle_s,
            )
        )
    return {
        "edge_processes": EDGE_PROCESSES,
        "status_every_s": STATUS_EVERY_S,
        "summary": summarize(runs),
        "runs": runs,
        "growth": growth(runs),
        "served_within_targets": served_within_targets(runs),
        "targets": [t.as_json() for t in targets(runs)],
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fleet's figures per size, their growth and the largest fleet within targets."""
    figures = {
        str(run["edges"]): {
            "error": run.get("error"),
            "connect_catch_up_s": _figure(run, "connect_catch_up_s"),
            "memory_kib_per_edge": _figure(run, "memory_kib_per_edge"),
            "cpu_percent_per_idle_edge": _figure(run, "idle", "cpu_percent_per_edge"),
            "link_bytes_per_idle_edge_s": _figure(run, "idle", "link_bytes_per_edge_s"),
            "open_files_per_edge": _figure(run, "open_files_per_edge"),
            "connect_master_cpu_ms_per_edge": _figure(run, "connect_master_cpu_ms_per_edge"),
            "fanout_max_s": max(run["fanout_s"]) if run.get("fanout_s") else None,
            "failover_all_taken_over_s": _figure(run, "failover", "all_taken_over_s"),
            "restart_negotiated_s": _figure(run, "restart", "negotiated_online_s"),
            "connect_storm": _figure(run, "connect_storm"),
        }
        for run in runs
    }
    return {
        "sizes": figures,
        "growth": growth(runs),
        "served_within_targets": served_within_targets(runs),
    }


GROWN: dict[str, Callable[[dict[str, Any]], float]] = {
    "connect and catch up (s)": lambda run: run["connect_catch_up_s"],
    "master CPU to connect and catch up (s)": lambda run: run["connect_catch_up_master_cpu_s"],
    "master RSS idle (MiB)": lambda run: run["idle"]["rss_mib"],
    "master CPU idle (% of a core)": lambda run: run["idle"]["master_cpu_percent"],
    "configuration fan-out (s)": lambda run: max(run["fanout_s"]),
    "restart until negotiated (s)": lambda run: run["restart"]["negotiated_online_s"],
    "failover beyond the timeout (s)": lambda run: (
        run["failover"]["all_taken_over_s"] - run["timeout_s"]
    ),
}


def growth(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's cost of one more edge between consecutive sizes, and their ratio."""
    grown: dict[str, Any] = {}
    runs = complete(runs)
    if len(runs) < 2:
        return grown
    for name, figure in GROWN.items():
        points = [(float(run["edges"]), float(figure(run))) for run in runs]
        costs = marginal_costs(points)
        grown[name] = {
            "per_edge": [round(cost, 6) for cost in costs],
            "last_over_first": round(costs[-1] / costs[0], 3) if costs[0] > 0 else None,
            "fit_r2": round(LineFit.of(*zip(*points, strict=True)).r2, 4),
        }
    return grown


def _figure(run: dict[str, Any], *path: str) -> Any:
    """A figure of a run, None when the run did not get that far."""
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def complete(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for run in runs if "error" not in run]


def run_targets(run: dict[str, Any]) -> list[Target]:
    """The targets one fleet size must meet (None where the run failed before)."""
    n = run["edges"]
    timeout = float(run["timeout_s"])
    fanout = _figure(run, "fanout_s")
    return [
        Target(
            f"master memory per connected edge, {n} edges",
            _figure(run, "memory_kib_per_edge"),
            MEMORY_PER_EDGE_KIB,
            "KiB",
            at_most=True,
        ),
        Target(
            f"master CPU per idle edge, {n} edges",
            _figure(run, "idle", "cpu_percent_per_edge"),
            CPU_PER_EDGE_PERCENT,
            "% of a core",
            at_most=True,
        ),
        Target(
            f"configuration change reaching every edge, {n} edges",
            max(fanout) if fanout else None,
            FANOUT_LIMIT_S,
            "s",
            at_most=True,
        ),
        Target(
            f"mass failover, every location taken over, {n} edges (timeout {timeout:g} s)",
            _figure(run, "failover", "all_taken_over_s"),
            timeout + FAILOVER_MARGIN_S,
            "s",
            at_most=True,
        ),
        Target(
            f"device connections opened by the master at the mass failover, {n} edges",
            _figure(run, "failover", "device_connections"),
            n,
            "connections",
            at_most=False,
        ),
        Target(
            f"master restart until every edge negotiated, {n} edges",
            _figure(run, "restart", "negotiated_online_s"),
            RESTART_LIMIT_S,
            "s",
            at_most=True,
        ),
        Target(
            f"edges told to let their devices go during the restart, {n} edges",
            _figure(run, "restart", "devices_released"),
            0,
            "edges",
            at_most=True,
        ),
    ]


def served_within_targets(runs: Sequence[dict[str, Any]]) -> int:
    """The largest fleet measured whose every target was met (0: none)."""
    return max((run["edges"] for run in runs if all(t.met for t in run_targets(run))), default=0)


def targets(runs: Sequence[dict[str, Any]]) -> list[Target]:
    largest = max(runs, key=lambda run: int(run["edges"]))
    found = run_targets(largest)
    if len(complete(runs)) >= 3:
        grown = growth(runs)
        for figure, name in (
            ("master RSS idle (MiB)", "memory per edge"),
            ("master CPU idle (% of a core)", "idle CPU per edge"),
        ):
            found.append(
                Target(
                    f"{name}, growth (last step / first step)",
                    grown[figure]["last_over_first"],
                    LINEARITY_LIMIT,
                    "x",
                    at_most=True,
                )
            )
    return found
