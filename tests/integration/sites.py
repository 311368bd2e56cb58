"""A master and its edges as real processes on loopback, linked over TLS.

:func:`open_site` starts a master serving TLS with a fresh CA; :meth:`Site.add_edge`
creates an edge location through the API (its document, one system, one module) and
starts its server, which verifies the master against that CA. Timings are shortened
through the settings so the scenarios run in seconds.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.support.engine import EngineProcess, free_port

TOKEN = "site-admin"
#: Seconds between an edge's connection attempts, and the link's ping interval.
RETRY_S = 0.3
PING_S = 0.3
FAST = {
    "ENGINE_LINK_RETRY_S": str(RETRY_S),
    "ENGINE_PING_INTERVAL_S": str(PING_S),
    "ENGINE_BOOT_WAIT_S": "0.5",
    "ENGINE_WITNESS_TIMEOUT_S": "1",
}


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and the master's certificate, as files the servers read."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def issue(cls, directory: Path) -> Tls:
        authority = trustme.CA()
        issued = authority.issue_cert("127.0.0.1", "localhost")
        tls = cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
        directory.mkdir(parents=True, exist_ok=True)
        authority.cert_pem.write_to_path(str(tls.ca))
        issued.private_key_pem.write_to_path(str(tls.key))
        issued.cert_chain_pems[0].write_to_path(str(tls.cert))
        return tls

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@dataclass
class Edge:
    """An edge location: its documents on the master and its server process."""

    name: str
    id: str
    system_id: str
    module_id: str
    process: EngineProcess
    secret: str


class Site:
    """A running master, an admin client of its API, and the edges added to it."""

    def __init__(self, root: Path, master: EngineProcess, http: httpx.AsyncClient, tls: Tls):
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
        **fields: Any,
    ) -> Edge:
        """Create an edge location with one system holding one module, and start its server.

        ``fields`` go into the EdgeControl document (``timeout``, ``failover``, …);
        ``master_url`` lets the edge reach the master another way (through a proxy);
        ``env`` adds settings; ``api_url`` records the edge's URL in its document, so
        the master can ask its witness.
        """
        port = free_port()
        if api_url:
            fields = {**fields, "api_url": f"http://127.0.0.1:{port}"}
        created = await self.post("/api/edges", {"name": name, **fields})
        system = await self.post(
            "/api/systems", {"name": f"{name} room", "edge_control_id": created["id"]}
        )
        added = await self.post(
            "/api/modules",
            {"driver_id": await self._driver(driver), "system_id": system["id"], **module},
        )
        process = EngineProcess(
            name,
            self.root / name,
            port=port,
            env={
                "ENGINE_EDGE_ID": created["id"],
                "ENGINE_EDGE_SECRET": created["secret"],
                "ENGINE_MASTER_URL": master_url or self.master.url,
                "ENGINE_TLS_CA": str(self.tls.ca),
                **FAST,
                **(env or {}),
            },
        )
        edge = Edge(name, created["id"], system["id"], added["id"], process, created["secret"])
        self.edges[name] = edge
        process.start()
        await process.wait_ready()
        return edge

    def pids(self) -> dict[str, int]:
        """The process id of every running server, by name ("master" or the edge's name)."""
        processes = [self.master, *(edge.process for edge in self.edges.values())]
        return {p.name: p.process.pid for p in processes if p.process and p.process.poll() is None}

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
        """The edge's control decisions, oldest first."""
        response = await self.http.get(f"/api/edges/{edge.id}/events")
        assert response.status_code == 200, response.text
        return list(reversed(response.json()))

    async def probe(self, server: EngineProcess, edge: Edge) -> int:
        """The status of the controller probe for ``edge`` on ``server``."""
        return (await self.get(server, f"/api/edges/{edge.id}/controller")).status_code

    async def module_state(self, server: EngineProcess, module_id: str) -> dict[str, Any]:
        """A module's status variables, as ``server`` answers for them."""
        response = await self.get(server, f"/api/modules/{module_id}/state")
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    async def get(self, server: EngineProcess, path: str) -> httpx.Response:
        """``GET path`` on any of the site's servers, as the admin."""
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, verify=self.tls.client(), timeout=10
        ) as http:
            return await http.get(f"{server.url}{path}")

    async def _driver(self, spec: Mapping[str, str]) -> str:
        key = f"{spec['file']}:{spec['class_name']}"
        if key not in self._drivers:
            self._drivers[key] = (await self.post("/api/drivers", spec))["id"]
        return self._drivers[key]

    def stop(self) -> None:
        for edge in self.edges.values():
            edge.process.stop()
        self.master.stop()


@asynccontextmanager
async def open_site(root: Path, **master_env: str) -> AsyncIterator[Site]:
    """A master serving TLS under ``root``; every server is stopped on exit."""
    tls = Tls.issue(root / "tls")
    master = EngineProcess(
        "master",
        root / "master",
        tls=True,
        env={
            "ENGINE_ADMIN_TOKEN": TOKEN,
            "ENGINE_TLS_CERT": str(tls.cert),
            "ENGINE_TLS_KEY": str(tls.key),
            **FAST,
            **master_env,
        },
    )
    http = httpx.AsyncClient(
        base_url=master.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=tls.client(),
        timeout=10,
    )
    site = Site(root, master, http, tls)
    try:
        master.start()
        await master.wait_ready(verify=tls.client())
        yield site
    finally:
        # Idle keep-alive connections first: over TLS they hold up a graceful shutdown.
        await http.aclose()
        site.stop()
