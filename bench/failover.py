"""Failover and restore, timed at a device (figure 4).

The master and the edge are ``python -m app serve`` processes; a simulated line
device runs in this process and records every connection, so "the master controls
the devices" means what it says: the master's own connection to the device is open.
For each configured ``timeout`` (a fresh edge location each):

- **failover**: SIGKILL the edge, then time until the device sees the master
  connect; the master's ControlEvent gives the moment it decided, too;
- **handover**: start the edge again (it connects and the master keeps control), then
  time ``POST /api/edges/{id}/restore`` until the device sees the edge connect, and
  how long the device had no controller at all (master gone, edge not yet there).

- **frozen edge**: SIGSTOP instead of SIGKILL. The edge's sockets stay open, so the
  master notices only after three missed pings (``ENGINE_PING_INTERVAL_S``), then
  waits ``timeout``. Meanwhile the edge still holds its device connection: after
  SIGCONT both controllers are connected until the edge reconnects with its devices
  loaded, wins the negotiation and the master lets go — timed too.

SIGKILL closes the edge's sockets, so the master hears of it at once.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from app.node_process import HOST, NodeProcess
from app.sim.line_device import LineDevice
from bench.support import Api, EdgeRoom, edge_process, master_process, seed_edge_room, started
from tests.support.wait import wait_until as wait_for

LINE_DRIVER = {"name": "Display", "file": "generic/tcp_line.py", "class_name": "TcpLine"}
#: Reconnect at once: the benchmark times control decisions, not a device's backoff.
QUICK_RECONNECT = {"reconnect_delay": 0.05, "reconnect_max": 0.5}


class DeviceWatch:
    """When a device saw connections open and close."""

    def __init__(self, device: LineDevice) -> None:
        self.device = device

    def first(self, kind: str, after: float) -> float | None:
        return next((at for at, what, _ in self.device.events if what == kind and at > after), None)

    def controlled_alone_since(self, after: float) -> bool:
        """One controller connected, and it connected after ``after``."""
        return self.device.active_connections == 1 and self.first("open", after) is not None


async def failover_once(
    api: Api, room: EdgeRoom, edge: NodeProcess, watch: DeviceWatch
) -> dict[str, Any]:
    await wait_for(
        lambda: _edge_in_control(api, room, watch), timeout=30, message="the edge in control"
    )
    killed, killed_wall = time.monotonic(), time.time()
    os.kill(edge.pid, signal.SIGKILL)
    await edge.wait()
    await wait_for(lambda: watch.controlled_alone_since(killed), timeout=120, message="failover")
    opened = watch.first("open", killed)
    assert opened is not None
    decided = await _decision_time(api, room.edge_id, "failover", killed_wall)

    await edge.start()
    async with httpx.AsyncClient(timeout=5.0) as http:
        await edge.wait_ready(http)
    await wait_for(
        lambda: _online(api, room.edge_id), timeout=30, message="the edge to connect again"
    )
    asked = time.monotonic()
    (await api.http.post(f"/api/edges/{room.edge_id}/restore")).raise_for_status()
    answered = time.monotonic()
    await wait_for(lambda: watch.controlled_alone_since(asked), timeout=30, message="the handover")
    back, released = watch.first("open", asked), watch.first("close", asked)
    assert back is not None and released is not None
    return {
        "failover_s": opened - killed,
        "decided_s": decided,
        "restore_answer_s": answered - asked,
        "handover_s": back - asked,
        "no_controller_s": max(0.0, back - released),
    }


async def frozen_once(
    api: Api, room: EdgeRoom, edge: NodeProcess, watch: DeviceWatch
) -> dict[str, Any]:
    await wait_for(
        lambda: _edge_in_control(api, room, watch), timeout=30, message="the edge in control"
    )
    frozen = time.monotonic()
    os.kill(edge.pid, signal.SIGSTOP)
    try:
        await wait_for(
            lambda: watch.first("open", frozen) is not None, timeout=120, message="failover"
        )
    finally:
        os.kill(edge.pid, signal.SIGCONT)
    resumed = time.monotonic()
    await wait_for(
        lambda: watch.device.active_connections == 1 and watch.first("close", resumed) is not None,
        timeout=30,
        message="one controller again",
    )
    opened, released = watch.first("open", frozen), watch.first("close", resumed)
    assert opened is not None and released is not None
    return {"failover_s": opened - frozen, "two_controllers_after_resume_s": released - resumed}


async def _edge_in_control(api: Api, room: EdgeRoom, watch: DeviceWatch) -> bool:
    return watch.device.active_connections == 1 and await api.controlled_by(room.edge_id, "edge")


async def _online(api: Api, edge_id: str) -> bool:
    return bool((await api.control(edge_id))["online"])


async def _decision_time(api: Api, edge_id: str, kind: str, since_wall: float) -> float | None:
    """Seconds from ``since_wall`` to the newest ControlEvent of ``kind``."""
    response = await api.http.get(f"/api/edges/{edge_id}/events")
    response.raise_for_status()
    for event in response.json():
        if event["kind"] == kind:
            return datetime.fromisoformat(event["at"]).timestamp() - since_wall
    return None


async def measure(workdir: Path, *, timeouts: Sequence[float], repeats: int) -> dict[str, Any]:
    master = await started(master_process(workdir / "master"))
    runs: list[dict[str, Any]] = []
    frozen: list[dict[str, Any]] = []
    try:
        async with Api(master.url) as api:
            for timeout in timeouts:
                device = LineDevice(HOST, 0, name=f"display-{timeout:g}")
                await device.start()
                room = await seed_edge_room(
                    api,
                    driver=LINE_DRIVER,
                    module={
                        "name": "Display",
                        "ip": HOST,
                        "port": device.port,
                        "settings": QUICK_RECONNECT,
                    },
                    # Failover once the edge runs: a new location is awaited from its
                    # creation, and these timeouts are shorter than an edge's start.
                    edge={"timeout": timeout, "failover": False},
                )
                edge = await started(edge_process(workdir / f"edge-{timeout:g}", room, master.url))
                await wait_for(
                    partial(_online, api, room.edge_id), timeout=30, message="the edge online"
                )
                await api.patch(f"/api/edges/{room.edge_id}", {"failover": True})
                try:
                    for _ in range(repeats):
                        run = await failover_once(api, room, edge, DeviceWatch(device))
                        runs.append({"timeout_s": timeout, **_rounded(run)})
                    run = await frozen_once(api, room, edge, DeviceWatch(device))
                    frozen.append({"timeout_s": timeout, **_rounded(run)})
                finally:
                    await edge.stop()
                    await device.stop()
    finally:
        await master.stop()
    return {"runs": runs, "by_timeout": _by_timeout(runs), "frozen": frozen}


def _rounded(run: dict[str, Any]) -> dict[str, Any]:
    return {k: None if v is None else round(v, 4) for k, v in run.items()}


def _by_timeout(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for timeout in sorted({r["timeout_s"] for r in runs}):
        mine = [r for r in runs if r["timeout_s"] == timeout]
        row: dict[str, Any] = {"timeout_s": timeout, "runs": len(mine)}
        for key in ("failover_s", "handover_s", "no_controller_s"):
            values = [float(r[key]) for r in mine]
            row[key] = {
                "median": round(statistics.median(values), 4),
                "min": round(min(values), 4),
                "max": round(max(values), 4),
            }
        row["overhead_s"] = round(row["failover_s"]["median"] - timeout, 4)
        summary.append(row)
    return summary
