"""Edge locations that each drive their own simulated device, and how to look at them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from app.sim.line_device import LineDevice
from tests.integration.sites import TOKEN, Edge, Site
from tests.support.owners import DeviceWatch
from tests.support.wait import wait_until

TCP_LINE = {
    "name": "TCP line",
    "file": "generic/tcp_line.py",
    "class_name": "TcpLine",
    "role": "device",
}
#: The failover timeout of the edges that fail over in these tests.
TIMEOUT_S = 1.5


@dataclass
class Room:
    """An edge location, the device its module drives, and who connects to it."""

    edge: Edge
    device: LineDevice
    watch: DeviceWatch

    @property
    def name(self) -> str:
        return self.edge.name


class Rooms:
    """Adds edge locations, each with its own device, to a site."""

    def __init__(self, site: Site, stack: AsyncExitStack) -> None:
        self.site = site
        self._stack = stack

    async def add(self, name: str, **fields: Any) -> Room:
        """An edge location whose display is a new device; ``fields`` as for ``add_edge``."""
        device = LineDevice(name=f"{name} display")
        await device.start()
        self._stack.push_async_callback(device.stop)
        watch = await self._stack.enter_async_context(DeviceWatch(device, self.site.pids))
        module = {"name": "Display", "ip": "127.0.0.1", "port": device.port}
        edge = await self.site.add_edge(name, driver=TCP_LINE, module=module, **fields)
        return Room(edge, device, watch)


async def send(site: Site, room: Room, text: str) -> httpx.Response:
    """``send(text)`` on the room's display, asked of the master."""
    return await site.http.post(
        f"/api/systems/{room.edge.system_id}/exec",
        json={"module": "Display", "method": "send", "args": [text]},
    )


async def last_reply(site: Site, room: Room, *, at_edge: bool = False) -> Any:
    """The display's ``last_reply`` as the master (or the edge itself) reports it."""
    server = room.edge.process if at_edge else site.master
    return (await site.module_state(server, room.edge.module_id)).get("last_reply")


async def decisions(site: Site, room: Room) -> list[str]:
    """The kinds of the edge's control decisions, oldest first; each one gives its reason."""
    events = await site.events(room.edge)
    assert all(event["reason"] for event in events), events
    return [event["kind"] for event in events]


async def online(site: Site, room: Room) -> bool:
    return bool((await site.control(room.edge))["online"])


async def offline(site: Site, room: Room) -> bool:
    return not await online(site, room)


async def readiness(site: Site) -> list[int]:
    """Poll the master's ``/api/ready`` until 200; the statuses it gave, repeats folded."""
    statuses: list[int] = []

    async def ready() -> bool:
        site.master.check_alive()
        try:
            response = await site.http.get("/api/ready")
        except httpx.HTTPError:
            return False
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
        if not statuses or statuses[-1] != response.status_code:
            statuses.append(response.status_code)
        return response.status_code == 200

    await wait_until(ready, timeout=15, message="the master to be ready")
    return statuses


def report(what: str, seconds: float) -> None:
    print(f"\n[ha] {what}: {seconds:.2f} s")


class ControllerSampler:
    """Asks every server whether it controls an edge's location, every ``interval`` seconds.

    Each sample reads the master's ``/control`` and then the controller probe
    (``GET /api/edges/{id}/controller``) on each server, so a sample whose ``/control``
    names the master while the master's probe is 503 means the API named a
    controller that does not run the location. The probes are not simultaneous, so
    the master is probed again after the edge: a sample is doubled only when the edge
    ran between two moments the master ran, not when a handover (the old controller
    stopped, then the new one started) fell between two probes of a slow sample.
    """

    def __init__(self, site: Site, edge: Edge, *, interval: float = 0.1) -> None:
        self.site = site
        self.edge = edge
        self.interval = interval
        #: (named controller, master's probe, edge's probe); 0 when a server did not answer.
        self.samples: list[tuple[str, int, int]] = []
        #: The master's probe again after the edge's, for each sample.
        self._master_after: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ControllerSampler:
        self._http = httpx.AsyncClient(verify=self.site.verify, timeout=0.5)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()

    def doubled(self) -> list[tuple[str, int, int]]:
        """Samples in which both servers answered 200 (the master before and after)."""
        return [
            sample
            for sample, after in zip(self.samples, self._master_after, strict=True)
            if sample[1] == 200 and sample[2] == 200 and after == 200
        ]

    def false_claims(self) -> list[tuple[str, int, int]]:
        """Samples in which ``/control`` named the master while the master ran nothing.

        Only the master's 503 says so: a probe that got no answer in time (0, a loaded
        machine) says nothing either way.
        """
        return [s for s in self.samples if s[0] == "master" and s[1] == 503]

    async def _sample(self) -> None:
        assert self._http is not None
        http, path = self._http, f"/api/edges/{self.edge.id}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        while True:
            started = time.monotonic()
            named = "?"
            with contextlib.suppress(httpx.HTTPError):
                response = await http.get(f"{self.site.master.url}{path}/control", headers=auth)
                if response.status_code == 200:
                    named = response.json()["controller"]
            statuses = []
            for server in (self.site.master, self.edge.process, self.site.master):
                try:
                    statuses.append((await http.get(f"{server.url}{path}/controller")).status_code)
                except httpx.HTTPError:
                    statuses.append(0)
            self._master_after.append(statuses[2])
            self.samples.append((named, statuses[0], statuses[1]))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
