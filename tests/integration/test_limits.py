"""Size limits between real processes: an oversized write is refused and replication goes on.

A master and an edge on loopback with their own embedded stores. Nothing here may drop
the control link: the edge's log says "link to the master lost" when one drops.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.node_process import NodeProcess
from app.store import JsonObject
from tests.support.stores import opened
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TOKEN = "limits-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"ENGINE_LINK_RETRY_S": "0.3", "ENGINE_PING_INTERVAL_S": "0.3", "ENGINE_BOOT_WAIT_S": "0.5"}
LINK_LOST = "link to the master lost"


@dataclass
class Pair:
    master: NodeProcess
    edge: NodeProcess
    http: httpx.AsyncClient
    edge_id: str

    def edge_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.edge.url, headers=AUTH, timeout=10)


@asynccontextmanager
async def edge_of(
    tmp_path: Path, master: NodeProcess, http: httpx.AsyncClient, **env: str
) -> AsyncIterator[Pair]:
    """Configure an edge on the running master and run its server until the block ends."""
    created = await http.post("/api/edges", json={"name": "Site", "timeout": 30})
    assert created.status_code == 201, created.text
    edge = await NodeProcess(
        "edge",
        tmp_path / "edge",
        settings={
            "ENGINE_EDGE_ID": created.json()["id"],
            "ENGINE_EDGE_SECRET": created.json()["secret"],
            "ENGINE_MASTER_URL": str(http.base_url).rstrip("/"),
            **FAST,
            **env,
        },
    ).start()
    try:
        await edge.wait_ready()
        yield Pair(master, edge, http, created.json()["id"])
    finally:
        await edge.stop()


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[NodeProcess]:
    process = await NodeProcess(
        "master", tmp_path / "master", settings={"ENGINE_ADMIN_TOKEN": TOKEN, **FAST}
    ).start()
    try:
        yield process
    finally:
        await process.stop()


async def edge_has(pair: Pair, system_id: str) -> bool:
    pair.edge.check_alive()
    async with pair.edge_client() as edge:
        listed = await edge.get("/api/systems", params={"limit": 1000})
    return system_id in {item["id"] for item in listed.json()["items"]}


async def test_an_oversized_settings_is_413_and_replication_carries_on(
    tmp_path: Path, master: NodeProcess
) -> None:
    await master.wait_ready()
    async with (
        httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=30) as http,
        edge_of(tmp_path, master, http) as pair,
    ):
        warm = await http.post("/api/systems", json={"name": "Warm-up"})
        await wait_until(lambda: edge_has(pair, warm.json()["id"]), timeout=10)
        edge_log_before = len(pair.edge.log())
        # Readiness counts what is true now, not what was true at boot.
        assert (await http.get("/api/ready")).json()["edges_connected"] == 1
        async with pair.edge_client() as edge:
            assert (await edge.get("/api/ready")).json()["master_connected"] is True

        huge = {"name": "Huge", "settings": {"blob": "x" * (2 * 1024 * 1024)}}
        refused = await http.post("/api/systems", json=huge)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "262144" in refused.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "Chunked", "settings": {"blob": "'
            for _ in range(32):
                yield b"x" * 65536
            yield b'"}}'

        chunked = await http.post(
            "/api/systems", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413, chunked.text

        started = time.monotonic()
        small = await http.post("/api/systems", json={"name": "Small"})
        assert small.status_code == 201, small.text
        await wait_until(lambda: edge_has(pair, small.json()["id"]), timeout=10, interval=0.05)
        reached_s = time.monotonic() - started

        assert reached_s < 2.0, f"the new system took {reached_s:.2f}s to reach the edge"
        assert LINK_LOST not in pair.edge.log()[edge_log_before:]
        assert "closed for size" not in master.log() + pair.edge.log()
        all_systems = (await http.get("/api/systems")).json()["items"]
        assert "Huge" not in {system["name"] for system in all_systems}


async def written_past_the_api(
    master: NodeProcess, docs: list[tuple[str, str, JsonObject]]
) -> None:
    """Stop the master, write ``docs`` straight into its store, and start it again."""
    await master.stop()
    async with opened(master.workdir / "engine.db") as store:
        await store.insert_many(docs)
    await master.start()
    await master.wait_ready()


async def test_a_document_no_frame_can_carry_is_reported_on_both_sides_and_skipped(
    tmp_path: Path, master: NodeProcess
) -> None:
    """Written past the API (another backend, an older version): reported, never blocking."""
    master.settings.update({"ENGINE_MAX_DOCUMENT_BYTES": "4096", "ENGINE_LINK_MAX_FRAME": "32768"})
    await master.wait_ready()
    async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
        before = await http.post("/api/systems", json={"name": "Before"})
    oversized: JsonObject = {
        "name": "Big",
        "description": "",
        "edge_control_id": None,
        "modules": [],
        "settings": {"b": "x" * 65536},
    }
    await written_past_the_api(master, [("sys-oversized", "system", oversized)])
    async with (
        httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http,
        edge_of(
            tmp_path, master, http, ENGINE_MAX_DOCUMENT_BYTES="4096", ENGINE_LINK_MAX_FRAME="32768"
        ) as pair,
    ):
        after = await http.post("/api/systems", json={"name": "After"})
        await wait_until(lambda: edge_has(pair, after.json()["id"]), timeout=10)
        assert await edge_has(pair, before.json()["id"])
        assert not await edge_has(pair, "sys-oversized")

        for process in (master, pair.edge):
            assert "sys-oversized" in process.log(), process.name
            assert await skipped_metric(process) >= 1, process.name
        control = await http.get(f"/api/edges/{pair.edge_id}/control")
        assert "sys-oversized" in control.json()["replication_error"]
        async with pair.edge_client() as edge:
            own = await edge.get(f"/api/edges/{pair.edge_id}/control")
        assert "sys-oversized" in own.json()["replication_error"]
        assert LINK_LOST not in pair.edge.log()


async def skipped_metric(process: NodeProcess) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{process.url}/metrics")).text
    values: list[Any] = [
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("engine_replication_skipped_documents_total ")
    ]
    return values[0] if values else 0.0


async def test_a_deleted_user_is_refused_at_once_on_the_master_and_soon_on_the_edge(
    tmp_path: Path, master: NodeProcess
) -> None:
    await master.wait_ready()
    async with (
        httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http,
        edge_of(tmp_path, master, http) as pair,
    ):
        user = (await http.post("/api/users", json={"name": "Leaver"})).json()
        token = (await http.post(f"/api/users/{user['id']}/tokens", json={})).json()["token"]
        as_user = {"Authorization": f"Bearer {token}"}
        async with pair.edge_client() as edge:

            async def edge_accepts() -> bool:
                return (await edge.get("/api/systems", headers=as_user)).status_code == 200

            await wait_until(edge_accepts, timeout=10, message="the user to reach the edge")
            assert (await http.get("/api/systems", headers=as_user)).status_code == 200

            assert (await http.delete(f"/api/users/{user['id']}")).status_code == 204
            assert (await http.get("/api/systems", headers=as_user)).status_code == 401

            async def edge_refuses() -> bool:
                return (await edge.get("/api/systems", headers=as_user)).status_code == 401

            took = await wait_until(edge_refuses, timeout=5, message="the edge to refuse it")
        assert took < 2.0, f"the edge accepted a deleted user's token for {took:.1f}s"


async def test_documents_the_runtime_cannot_read_cost_only_themselves(
    tmp_path: Path, master: NodeProcess
) -> None:
    """A system without modules, a module without a driver: written past the API, they
    are logged and left out, and both servers boot and serve the rest."""
    await master.wait_ready()
    async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
        created = await http.post("/api/edges", json={"name": "Site", "timeout": 30})
    edge_id = created.json()["id"]
    await written_past_the_api(
        master,
        [
            ("sys-no-modules", "system", {"name": "Bare", "edge_control_id": edge_id}),
            ("sys-odd-modules", "system", {"name": "Odd", "modules": [7, None]}),
            ("mod-no-driver", "module", {"name": "Display"}),
        ],
    )
    async with (
        httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http,
        edge_of(tmp_path, master, http) as pair,
    ):
        after = await http.post("/api/systems", json={"name": "After", "edge_control_id": edge_id})
        assert after.status_code == 201, after.text
        await wait_until(lambda: edge_has(pair, after.json()["id"]), timeout=10)
        await pair.edge.stop()  # the edge boots from its replica, bad documents included
        await pair.edge.start()
        await pair.edge.wait_ready()
        async with pair.edge_client() as edge:
            assert (await edge.get("/api/ready")).json()["master_connected"] is True
        for process in (master, pair.edge):
            log = process.log()
            for doc_id in ("sys-no-modules", "sys-odd-modules", "mod-no-driver"):
                assert f"{doc_id!r} cannot be run and is left out" in log, (process.name, doc_id)
            assert "Traceback" not in log, process.log_tail()
