"""A master and its edges as real processes on loopback, linked over TLS or not.

:func:`open_site` starts a master, serving TLS with a fresh CA unless told otherwise;
:meth:`Site.add_edge` creates an edge location through the API (its document, one
system, one module) and starts its server, which verifies the master against that CA.
Timings are shortened through the settings so the scenarios run in seconds. Every
integration test that needs a master and edges set up through the API starts here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trustme

from app.node_process import NodeProcess, free_port
from tests.support.wait import wait_until

TOKEN = "site-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: The driver most scenarios load: it answers at once (app/drivers/generic/echo.py).
ECHO = {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"}
#: Seconds between an edge's connection attempts, and the link's ping interval.
RETRY_S = 0.3
PING_S = 0.3
FAST = {
    "ENGINE_LINK_RETRY_S": str(RETRY_S),
    "ENGINE_PING_INTERVAL_S": str(PING_S),
    "ENGINE_BOOT_WAIT_S": "0.5",
    "ENGINE_WITNESS_TIMEOUT_S": "1",
}


#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify the chain and the name, not the dates.
_NO_CHECK_TIME = 0x200000


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and the master's certificate, as files the servers read.

    ``not_after`` issues a certificate that expires then (the servers verify it as
    always); the test's own clients then verify everything but its dates, so they
    keep watching the servers once it has expired.
    """

    ca: Path
    cert: Path
    key: Path
    not_after: datetime | None = None

    @classmethod
    def issue(cls, directory: Path, *, not_after: datetime | None = None) -> Tls:
        authority = trustme.CA()
        not_before = not_after - timedelta(days=30) if not_after is not None else None
        issued = authority.issue_cert(
            "127.0.0.1", "localhost", not_before=not_before, not_after=not_after
        )
        tls = cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem", not_after)
        directory.mkdir(parents=True, exist_ok=True)
        authority.cert_pem.write_to_path(str(tls.ca))
        issued.private_key_pem.write_to_path(str(tls.key))
        issued.cert_chain_pems[0].write_to_path(str(tls.cert))
        return tls

    def client(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if self.not_after is not None:
            context.verify_flags |= _NO_CHECK_TIME
        return context


@dataclass
class Edge:
    """An edge location: its documents on the master and its server process."""

    name: str
    id: str
    secret: str
    system_id: str
    module_id: str
    process: NodeProcess


class Site:
    """A running master, an admin client of its API, and the edges added to it."""

    def __init__(
        self, root: Path, master: NodeProcess, http: httpx.AsyncClient, tls: Tls | None
    ) -> None:
        self.root = root
        self.master = master
        self.http = http
        self.tls = tls
        self.edges: dict[str, Edge] = {}
        self._drivers: dict[str, str] = {}

    async def add_edge(
        self,
        name: str,
        *,
        driver: Mapping[str, str],
        module: Mapping[str, Any],
        master_url: str | None = None,
        env: Mapping[str, str] | None = None,
        api_url: bool = False,
        start: bool = True,
        **fields: Any,
    ) -> Edge:
        """Create an edge location with one system holding one module, and start its server.

        ``fields`` go into the EdgeControl document (``timeout``, ``failover``, …);
        ``master_url`` lets the edge reach the master another way (through a proxy);
        ``env`` adds settings; ``api_url`` records the edge's URL in its document, where
        clients are sent and the master asks its witness; without ``start`` its server
        is left for the test to start.

        A location is awaited from its creation: with failover on, the master takes it
        over after ``timeout`` unless its edge connects first. Timeouts here are shorter
        than an edge's start, so an edge started here is created with failover off and
        given the failover asked for once it is online.
        """
        port = free_port()
        if api_url:
            fields = {**fields, "api_url": f"http://127.0.0.1:{port}"}
        failover = fields.get("failover", True)
        if start:
            fields = {**fields, "failover": False}
        created = await self.post("/api/edges", {"name": name, **fields})
        system_id, module_id = await self.add_room(
            f"{name} room", driver=driver, module=module, edge_control_id=created["id"]
        )
        settings = {
            "ENGINE_EDGE_ID": created["id"],
            "ENGINE_EDGE_SECRET": created["secret"],
            "ENGINE_MASTER_URL": master_url or self.master.url,
            **({"ENGINE_TLS_CA": str(self.tls.ca)} if self.tls is not None else {}),
            **FAST,
            **(env or {}),
        }
        process = NodeProcess(name, self.root / name, port=port, settings=settings)
        edge = Edge(name, created["id"], created["secret"], system_id, module_id, process)
        self.edges[name] = edge
        if start:
            await process.start()
            await process.wait_ready()
            if failover:
                await wait_until(lambda: self._online(edge), timeout=20, message=f"{name} online")
                await self.set_failover(edge, True)
        return edge

    async def _online(self, edge: Edge) -> bool:
        return bool((await self.control(edge))["online"])

    async def set_failover(self, edge: Edge, on: bool) -> None:
        """Turn the location's failover on or off, and wait until the master applies it
        (the configuration watcher applies a write after it is stored)."""
        await self.patch_edge(edge, {"failover": on})
        line = f'engine_location_failover_enabled{{edge_id="{edge.id}"}} {1.0 if on else 0.0}'

        async def applied() -> bool:
            return line in (await self.http.get("/metrics")).text

        await wait_until(applied, timeout=20, message=f"the master to apply failover {on}")

    async def add_room(
        self,
        name: str,
        *,
        driver: Mapping[str, str],
        module: Mapping[str, Any],
        edge_control_id: str | None = None,
    ) -> tuple[str, str]:
        """A system holding one module, at an edge location or the master's; their ids."""
        system = await self.post("/api/systems", {"name": name, "edge_control_id": edge_control_id})
        added = await self.post(
            "/api/modules",
            {"driver_id": await self.driver_id(driver), "system_id": system["id"], **module},
        )
        return system["id"], added["id"]

    @property
    def certificates(self) -> Tls:
        """The CA and the master's certificate; a site opened with ``tls=False`` has none."""
        if self.tls is None:
            raise RuntimeError("this site serves no TLS")
        return self.tls

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How clients verify the site's servers."""
        return self.tls.client() if self.tls is not None else True

    def pids(self) -> dict[str, int]:
        """The process id of every running server, by name ("master" or the edge's name)."""
        processes = [self.master, *(edge.process for edge in self.edges.values())]
        return {p.name: p.pid for p in processes if p.running}

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.http.post(path, json=dict(body))
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def patch_edge(self, edge: Edge, changes: Mapping[str, Any]) -> None:
        response = await self.http.patch(f"/api/edges/{edge.id}", json=dict(changes))
        assert response.status_code == 200, response.text

    async def control(self, edge: Edge) -> dict[str, Any]:
        """``GET /api/edges/{id}/control`` on the master."""
        response = await self.http.get(f"/api/edges/{edge.id}/control")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events(self, edge: Edge) -> list[dict[str, Any]]:
        """The edge's control decisions, oldest first, from its first connection on (the
        master's note that it awaits a new location's edge is left out)."""
        response = await self.http.get(f"/api/edges/{edge.id}/events")
        assert response.status_code == 200, response.text
        return [event for event in reversed(response.json()) if event["kind"] != "created"]

    async def probe(self, server: NodeProcess, edge: Edge) -> int:
        """The status of the controller probe for ``edge`` on ``server``."""
        return (await self.get(server, f"/api/edges/{edge.id}/controller")).status_code

    async def module_state(self, server: NodeProcess, module_id: str) -> dict[str, Any]:
        """A module's status variables, as ``server`` answers for them."""
        response = await self.get(server, f"/api/modules/{module_id}/state")
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    async def get(self, server: NodeProcess, path: str) -> httpx.Response:
        """``GET path`` on any of the site's servers, as the admin."""
        async with httpx.AsyncClient(headers=AUTH, verify=self.verify, timeout=10) as http:
            return await http.get(f"{server.url}{path}")

    async def driver_id(self, spec: Mapping[str, str]) -> str:
        """The id of the driver document for ``spec``, created on first use."""
        key = f"{spec['file']}:{spec['class_name']}"
        if key not in self._drivers:
            self._drivers[key] = (await self.post("/api/drivers", spec))["id"]
        return self._drivers[key]

    async def stop(self) -> None:
        for edge in self.edges.values():
            await edge.process.stop()
        await self.master.stop()


@asynccontextmanager
async def open_site(
    root: Path, *, tls: bool | Tls = True, **master_env: str
) -> AsyncIterator[Site]:
    """A master under ``root``, serving TLS unless ``tls`` is false (with the given
    certificates, else fresh ones); every server is stopped on exit."""
    issued = tls if isinstance(tls, Tls) else Tls.issue(root / "tls") if tls else None
    settings = {"ENGINE_ADMIN_TOKEN": TOKEN, **FAST, **master_env}
    if issued is not None:
        settings.update(ENGINE_TLS_CERT=str(issued.cert), ENGINE_TLS_KEY=str(issued.key))
    master = NodeProcess("master", root / "master", tls=issued is not None, settings=settings)
    verify = issued.client() if issued is not None else True
    http = httpx.AsyncClient(base_url=master.url, headers=AUTH, verify=verify, timeout=10)
    site = Site(root, master, http, issued)
    try:
        await master.start()
        await master.wait_ready(verify=verify)
        yield site
    finally:
        # Idle keep-alive connections first: over TLS they hold up a graceful shutdown.
        await http.aclose()
        await site.stop()
