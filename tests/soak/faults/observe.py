"""What the run watches while the faults strike, written to the history as it happens.

- every ``interval`` (100 ms) per location: the master's ``/control`` (recorded when it
  changed), then ``/controller`` on every server that may control the location, in two
  passes so a server answering 200 before and after another one shows both at once;
  a server known to be down or frozen is not asked (it could not answer);
- every half second per location: the master's ControlEvents, each recorded once;
- the device process's lines, each connection with the pid that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from tests.soak.faults.cluster import AUTH, EdgeSite, Site
from tests.soak.faults.history import (
    ControlSample,
    Decision,
    DeviceEvent,
    HistoryWriter,
    Probe,
    ProbeRound,
)

#: Long enough for a loaded server, short enough that a stalled one costs little.
PROBE_TIMEOUT_S = 1.0


class Devices:
    """Reads the device process's lines: the history gets each, and the run knows who
    holds each device now."""

    def __init__(self, stream: asyncio.StreamReader, history: HistoryWriter) -> None:
        self._stream = stream
        self._history = history
        #: device → peer → pid of each open connection.
        self.open: dict[str, dict[str, int | None]] = {}

    async def ports(self) -> dict[str, int]:
        line = await self._stream.readline()
        if not line:
            raise RuntimeError("the device process exited before it listened")
        ports: dict[str, int] = json.loads(line)["ports"]
        self.open = {name: {} for name in ports}
        return ports

    async def follow(self) -> None:
        while line := await self._stream.readline():
            raw: dict[str, Any] = json.loads(line)
            event = DeviceEvent(**raw)
            self._history.write(event)
            held = self.open.setdefault(event.device, {})
            if event.event == "open":
                held[event.peer] = event.pid
            else:
                held.pop(event.peer, None)

    def holders(self, device: str) -> list[int | None]:
        return list(self.open.get(device, {}).values())


class Observer:
    """Samples control and the controller probes of every location; follows the history."""

    def __init__(self, site: Site, history: HistoryWriter, *, interval: float = 0.1) -> None:
        self.site = site
        self.history = history
        self.interval = interval
        self._http = httpx.AsyncClient(
            verify=False, timeout=PROBE_TIMEOUT_S, limits=httpx.Limits(max_keepalive_connections=20)
        )
        self._last: dict[str, tuple[str, int, bool, bool]] = {}
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for edge in self.site.edges.values():
            self._tasks.append(asyncio.create_task(self._sample(edge)))
        self._tasks.append(asyncio.create_task(self._follow_decisions()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.aclose()

    async def decisions(self) -> None:
        """Read every location's ControlEvents once more (the run's last word)."""
        for edge in self.site.edges.values():
            await self._decisions(edge, limit=1000)

    async def _sample(self, edge: EdgeSite) -> None:
        while True:
            started = time.monotonic()
            await self._control(edge)
            probes: list[Probe] = []
            servers = [s for s in edge.servers(self.site.master) if s.available]
            for server in [*servers, *servers]:
                probes.append(await self._probe(server.name, server.url, edge.edge_id))
            self.history.write(ProbeRound(started, edge.name, tuple(probes)))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _probe(self, name: str, url: str, edge_id: str) -> Probe:
        sent = time.monotonic()
        try:
            status = (await self._http.get(f"{url}/api/edges/{edge_id}/controller")).status_code
        except httpx.HTTPError:
            status = 0
        return Probe(name, sent, time.monotonic(), status)

    async def _control(self, edge: EdgeSite) -> None:
        master = self.site.master
        if not master.available:
            return
        url = f"{master.url}/api/edges/{edge.edge_id}/control"
        try:
            response = await self._http.get(url, headers=AUTH)
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        body = response.json()
        state = (body["controller"], body["epoch"], body["online"], body.get("pending") is not None)
        if self._last.get(edge.name) != state:
            self._last[edge.name] = state
            controller, epoch, online, pending = state
            self.history.write(
                ControlSample(time.monotonic(), edge.name, controller, epoch, online, pending)
            )

    async def _follow_decisions(self) -> None:
        while True:
            for edge in self.site.edges.values():
                await self._decisions(edge, limit=100)
            await asyncio.sleep(0.5)

    async def _decisions(self, edge: EdgeSite, *, limit: int) -> None:
        master = self.site.master
        if not master.available:
            return
        url = f"{master.url}/api/edges/{edge.edge_id}/events?limit={limit}"
        try:
            response = await self._http.get(url, headers=AUTH, timeout=5.0)
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        now = time.monotonic()
        for event in reversed(response.json()):
            if event["id"] in self._seen:
                continue
            self._seen.add(event["id"])
            self.history.write(
                Decision(
                    now,
                    edge.name,
                    event["id"],
                    event["at"],
                    event["kind"],
                    event["controller"],
                    event["epoch"],
                )
            )
