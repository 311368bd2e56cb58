"""The site a fault-schedule run puts through its faults: real servers on loopback.

A master and N edges, each ``python -m app serve`` with its own embedded store, all
serving TLS with certificates from a CA made for the run. Each edge reaches the master
through two pausable proxies (:class:`tests.support.proxy.PausableProxy`): one carries
its control link (``ENGINE_LINK_URL``), the other its questions to the master's API
(``ENGINE_MASTER_URL``, the witness); the master and clients reach the edge's API
through a third (its ``api_url``). Every start, readiness, exit, freeze and thaw of a
server is written to the history, with its pid, so the checker can tell who held a
device's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme

from app.node_process import NodeProcess, free_port
from tests.integration.rooms import TCP_LINE
from tests.soak.faults.history import HistoryWriter, ProcessEvent
from tests.support.proxy import PausableProxy

TOKEN = "faults-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: A server that exits without being told to is started again after this long, as a
#: service manager (systemd's ``Restart=always``) would.
RESTART_DELAY_S = 1.0


@dataclass(frozen=True)
class Timings:
    """The shortened settings every server of the run gets."""

    ping_interval_s: float = 0.3
    link_retry_s: float = 0.3
    witness_timeout_s: float = 1.0
    boot_wait_s: float = 0.5

    def settings(self) -> dict[str, str]:
        return {
            "ENGINE_PING_INTERVAL_S": str(self.ping_interval_s),
            "ENGINE_LINK_RETRY_S": str(self.link_retry_s),
            "ENGINE_WITNESS_TIMEOUT_S": str(self.witness_timeout_s),
            "ENGINE_BOOT_WAIT_S": str(self.boot_wait_s),
        }


class Certificates:
    """A CA made for the run, and certificates it issues for 127.0.0.1, as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._authority = trustme.CA()
        self.ca = directory / "ca.pem"
        self._authority.cert_pem.write_to_path(str(self.ca))
        self._issued = 0

    def issue(self, name: str, lifetime_s: float | None = None) -> dict[str, str]:
        """A certificate valid from a minute ago for ``lifetime_s`` more seconds (a year
        without), as the ``ENGINE_TLS_CERT`` and ``ENGINE_TLS_KEY`` settings."""
        self._issued += 1
        now = dt.datetime.now(dt.UTC)
        lifetime = dt.timedelta(seconds=lifetime_s) if lifetime_s is not None else None
        leaf = self._authority.issue_cert(
            "127.0.0.1",
            "localhost",
            not_before=now - dt.timedelta(minutes=1),
            not_after=now + lifetime if lifetime is not None else now + dt.timedelta(days=365),
        )
        cert = self.directory / f"{name}-{self._issued}.pem"
        key = self.directory / f"{name}-{self._issued}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return {"ENGINE_TLS_CERT": str(cert), "ENGINE_TLS_KEY": str(key)}


def set_immutable(paths: list[Path], immutable: bool) -> None:
    """``chattr +i`` / ``-i``: for root, the only way to make a file it holds open
    refuse writes, as a full or read-only disk would (tests/support/unwritable.py)."""
    if paths:
        flag = "+i" if immutable else "-i"
        subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


def release_all(directory: Path) -> None:
    """Every file under ``directory`` writable again (the run's end, whatever happened)."""
    if directory.exists():
        subprocess.run(["chattr", "-R", "-i", str(directory)], check=False, capture_output=True)


def database_files(server: NodeProcess) -> list[Path]:
    database = server.workdir / "engine.db"
    candidates = [database, database.with_name(database.name + "-wal")]
    return [path for path in candidates if path.exists()]


class Server:
    """One engine process of the run; every change of its life goes to the history.

    A server that exits on its own (a failed boot, a crash) is started again after
    ``RESTART_DELAY_S``; one a fault killed or stopped stays down until told to start.
    """

    def __init__(
        self,
        process: NodeProcess,
        *,
        role: str,
        location: str | None,
        history: HistoryWriter,
        http: httpx.AsyncClient,
    ) -> None:
        self.process = process
        self.role = role
        self.location = location
        self.frozen = False
        self.ready = False
        self._held_down = True
        self._history = history
        self._http = http
        self._watching: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process.running else None

    @property
    def available(self) -> bool:
        """Running and not frozen: it can answer."""
        return self.process.running and not self.frozen

    async def start(self, why: str = "") -> None:
        if self.process.running:
            return
        self._held_down = False
        self.ready = self.frozen = False
        await self.process.start()
        self._record("start", pid=self.process.pid, detail=why)
        self._watching = asyncio.create_task(self._watch())

    async def kill(self) -> None:
        """SIGKILL; it stays down until :meth:`start`."""
        self._held_down = True
        await self.process.kill()
        await self._exited()

    async def stop(self) -> None:
        """SIGTERM (SIGKILL after the grace); it stays down until :meth:`start`."""
        self._held_down = True
        if self.frozen:
            self.thaw()
        await self.process.stop()
        await self._exited()

    async def restart(self, why: str) -> None:
        await self.stop()
        await self.start(why)

    def freeze(self) -> None:
        if self.process.running and not self.frozen:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True
            self._record("freeze", pid=self.process.pid)

    def thaw(self) -> None:
        if self.frozen:
            self.frozen = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
            self._record("thaw", pid=self.process.pid)

    def note(self, event: str, detail: str) -> None:
        """Something else that happened to it (the checker reads only the events above)."""
        self._record(event, pid=self.pid, detail=detail)

    async def _exited(self) -> None:
        watching = self._watching
        if watching is not None and watching is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(watching)

    async def _watch(self) -> None:
        """Readiness, then the exit; a server that exits unbidden is started again."""
        readiness = asyncio.create_task(self._wait_ready())
        pid = self.process.pid
        status = await self.process.wait()
        readiness.cancel()
        self.ready = self.frozen = False
        self._record("exit", pid=pid, detail=f"exit status {status}")
        if self._held_down:
            return
        await asyncio.sleep(RESTART_DELAY_S)
        if not self._held_down and not self.process.running:
            self._watching = None
            await self.start(f"exited on its own (status {status}): restarted")

    async def _wait_ready(self) -> None:
        while True:
            if not self.frozen:
                with contextlib.suppress(httpx.HTTPError):
                    response = await self._http.get(f"{self.url}/api/ready", timeout=1.0)
                    if response.status_code == 200:
                        self.ready = True
                        self._record("ready", pid=self.process.pid)
                        return
            await asyncio.sleep(0.1)

    def _record(self, event: str, *, pid: int | None = None, detail: str = "") -> None:
        self._history.write(
            ProcessEvent(time.monotonic(), self.name, self.role, event, pid, self.location, detail)
        )


@dataclass
class EdgeSite:
    """An edge location: its documents, its server, the paths to and from it, its device."""

    name: str
    edge_id: str
    secret: str
    device: str
    server: Server
    link: PausableProxy
    master_api: PausableProxy
    edge_api: PausableProxy
    clones: list[Server] = field(default_factory=list)

    @property
    def proxies(self) -> tuple[PausableProxy, ...]:
        return (self.link, self.master_api, self.edge_api)

    def servers(self, master: Server) -> list[Server]:
        """Every server that may control the location: the master, the edge, its clones."""
        return [master, self.server, *(c for c in self.clones if c.process.running)]


class Site:
    """The master and its edges, their proxies and an admin client of the master's API."""

    def __init__(
        self,
        root: Path,
        *,
        timings: Timings,
        timeout: float,
        certificates: Certificates,
        history: HistoryWriter,
    ) -> None:
        self.root = root
        self.timings = timings
        self.timeout = timeout
        self.certificates = certificates
        self.history = history
        #: Servers are asked with TLS unverified: an expired certificate must not blind
        #: the observers (the servers themselves verify each other).
        self.http = httpx.AsyncClient(verify=False, timeout=5.0)
        settings = {
            "ENGINE_ADMIN_TOKEN": TOKEN,
            "ENGINE_TLS_CA": str(certificates.ca),
            **certificates.issue("master"),
            **timings.settings(),
        }
        process = NodeProcess("master", root / "master", tls=True, settings=settings)
        self.master = Server(process, role="master", location=None, history=history, http=self.http)
        self.edges: dict[str, EdgeSite] = {}

    @property
    def servers(self) -> list[Server]:
        edges = [e.server for e in self.edges.values()]
        clones = [c for e in self.edges.values() for c in e.clones]
        return [self.master, *edges, *clones]

    def named(self, name: str) -> Server:
        return next(server for server in self.servers if server.name == name)

    async def start_master(self) -> None:
        await self.master.start()
        await self.wait(lambda: self.master.ready, 60, "the master to be ready")

    async def add_edge(self, name: str, device: str, device_port: int) -> EdgeSite:
        """An edge location with one system and one module driving ``device``; started."""
        port = free_port()
        link = PausableProxy(self.master.process.port)
        master_api = PausableProxy(self.master.process.port)
        edge_api = PausableProxy(port)
        for proxy in (link, master_api, edge_api):
            await proxy.start()
        created = await self.api(
            "POST",
            "/api/edges",
            {
                "name": name,
                "timeout": self.timeout,
                "failover": True,
                "api_url": f"https://127.0.0.1:{edge_api.port}",
            },
        )
        system = await self.api(
            "POST", "/api/systems", {"name": f"{name} room", "edge_control_id": created["id"]}
        )
        driver = await self.driver_id()
        await self.api(
            "POST",
            "/api/modules",
            {
                "driver_id": driver,
                "system_id": system["id"],
                "name": "Display",
                "ip": "127.0.0.1",
                "port": device_port,
            },
        )
        settings = {
            "ENGINE_EDGE_ID": created["id"],
            "ENGINE_EDGE_SECRET": created["secret"],
            "ENGINE_MASTER_URL": f"https://127.0.0.1:{master_api.port}",
            "ENGINE_LINK_URL": f"https://127.0.0.1:{link.port}",
            "ENGINE_TLS_CA": str(self.certificates.ca),
            **self.certificates.issue(name),
            **self.timings.settings(),
        }
        process = NodeProcess(name, self.root / name, port=port, tls=True, settings=settings)
        server = Server(process, role="edge", location=name, history=self.history, http=self.http)
        edge = EdgeSite(
            name, created["id"], created["secret"], device, server, link, master_api, edge_api
        )
        self.edges[name] = edge
        await server.start()
        return edge

    async def clone(self, edge: EdgeSite) -> Server:
        """A second process for ``edge``: the same id and secret, a copy of its replica."""
        number = len(edge.clones) + 1
        name = f"{edge.name}-clone{number}"
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        self._snapshot(edge.server, workdir)
        settings = {
            k: v
            for k, v in edge.server.process.settings.items()
            if k not in ("ENGINE_DATABASE_URL", "ENGINE_DRIVERS_PATH", "ENGINE_PUBLIC_URL")
        }
        # Its own machine: it reaches the master directly, not through the edge's paths.
        settings["ENGINE_MASTER_URL"] = settings["ENGINE_LINK_URL"] = self.master.url
        process = NodeProcess(name, workdir, tls=True, settings=settings)
        clone = Server(
            process, role="clone", location=edge.name, history=self.history, http=self.http
        )
        edge.clones.append(clone)
        await clone.start("a copy of the edge: same id, secret and replica")
        return clone

    @staticmethod
    def _snapshot(server: Server, workdir: Path) -> None:
        """Copy the server's database files as a hypervisor snapshots a disk: the server
        paused (SIGSTOP) for the copy, a few milliseconds, so the copy is one instant's,
        which SQLite recovers like after a power cut. (A server's store locks its file
        exclusively: no other process can read it live.) The pause is recorded as a
        ``snapshot``, not a freeze: it excuses nothing."""
        pause = server.available
        started = time.monotonic()
        if pause:
            os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for path in database_files(server.process):
                shutil.copyfile(path, workdir / path.name)
        finally:
            if pause:
                os.kill(server.process.pid, signal.SIGCONT)
        took = time.monotonic() - started
        server.note("snapshot", f"paused {took * 1000:.1f} ms for a copy of its disk")

    async def driver_id(self) -> str:
        found = await self.api("GET", "/api/drivers")
        for driver in found["items"]:
            if driver["file"] == TCP_LINE["file"]:
                return str(driver["id"])
        return str((await self.api("POST", "/api/drivers", TCP_LINE))["id"])

    async def api(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        """An admin call to the master; raises ``httpx.HTTPStatusError`` on an error answer."""
        response = await self.http.request(
            method,
            f"{self.master.url}{path}",
            json=dict(body) if body is not None else None,
            headers=AUTH,
            timeout=timeout,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> bool:
        """Poll ``condition()`` until true; False (not an error) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                print(f"faults: gave up waiting for {what} after {timeout:g} s", flush=True)
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        for server in reversed(self.servers):
            await server.stop()
        for edge in self.edges.values():
            for proxy in edge.proxies:
                await proxy.close()
        await self.http.aclose()
        release_all(self.root)
