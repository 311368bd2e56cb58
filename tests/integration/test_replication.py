"""The embedded replica between a real master and a real edge process on loopback.

The edge serves configuration reads from its own copy, so what it answers on its own
REST API is what it replicated.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store import JsonObject, SqliteStore
from tests.support.engine import EngineProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TOKEN = "replication-admin"
FAST = {"ENGINE_LINK_RETRY_S": "0.3", "ENGINE_PING_INTERVAL_S": "0.3", "ENGINE_BOOT_WAIT_S": "0.5"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTLE_S = 10.0
FILLER_DOCUMENTS = 10_000

Snapshot = dict[str, tuple[str, str, JsonObject]]


@dataclass
class Site:
    """A master, the edge it configures, and one module in a system at that edge."""

    master: EngineProcess
    edge: EngineProcess
    http: httpx.AsyncClient
    edge_id: str
    secret: str
    driver_id: str
    system_id: str
    module_id: str

    def edge_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.edge.url, headers=AUTH, timeout=10)

    async def create_module(self, name: str) -> dict[str, Any]:
        response = await self.http.post(
            "/api/modules",
            json={"driver_id": self.driver_id, "name": name, "system_id": self.system_id},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


async def configure(master: EngineProcess, http: httpx.AsyncClient) -> dict[str, Any]:
    """Driver, edge, system and module on the master; returns their ids and the secret."""
    await master.wait_ready()
    driver = await http.post(
        "/api/drivers",
        json={"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"},
    )
    edge = await http.post("/api/edges", json={"name": "Site", "timeout": 30})
    system = await http.post(
        "/api/systems", json={"name": "Room", "edge_control_id": edge.json()["id"]}
    )
    module = await http.post(
        "/api/modules",
        json={"driver_id": driver.json()["id"], "name": "Echo", "system_id": system.json()["id"]},
    )
    assert module.status_code == 201, module.text
    return {
        "edge_id": edge.json()["id"],
        "secret": edge.json()["secret"],
        "driver_id": driver.json()["id"],
        "system_id": system.json()["id"],
        "module_id": module.json()["id"],
    }


def edge_process(tmp_path: Path, master: EngineProcess, edge_id: str, secret: str) -> EngineProcess:
    return EngineProcess(
        "edge",
        tmp_path / "edge",
        env={
            "ENGINE_EDGE_ID": edge_id,
            "ENGINE_EDGE_SECRET": secret,
            "ENGINE_MASTER_URL": master.url,
            **FAST,
        },
    )


def master_process(tmp_path: Path) -> EngineProcess:
    return EngineProcess("master", tmp_path / "master", env={"ENGINE_ADMIN_TOKEN": TOKEN, **FAST})


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    master = master_process(tmp_path).start()
    edge: EngineProcess | None = None
    async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
        try:
            ids = await configure(master, http)
            edge = edge_process(tmp_path, master, ids["edge_id"], ids["secret"]).start()
            await edge.wait_ready()
            yield Site(master, edge, http, **ids)
        finally:
            if edge is not None:
                edge.stop()
            master.stop()


async def wait_for_edge_copy(site: Site, path: str, *, timeout: float = SETTLE_S) -> httpx.Response:
    """Wait until the edge answers ``path`` from its replica as the master does."""
    async with site.edge_client() as edge:
        answer: httpx.Response | None = None

        async def same_as_master() -> bool:
            nonlocal answer
            site.edge.check_alive()
            expected = await site.http.get(path)
            try:
                answer = await edge.get(path)
            except httpx.TransportError:
                return False
            return (answer.status_code, answer.headers.get("etag"), answer.text) == (
                expected.status_code,
                expected.headers.get("etag"),
                expected.text,
            )

        await wait_until(same_as_master, timeout=timeout, message=f"the edge's copy of {path}")
    assert answer is not None
    assert answer.headers["x-engine-node"] == f"edge:{site.edge_id}", "served by the edge"
    return answer


# --- what reaches the edge ----------------------------------------------------------------


async def test_changes_made_while_the_edge_is_down_reach_it_when_it_returns(site: Site) -> None:
    await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    site.edge.stop()

    created = await site.create_module("Panel")
    changed = await site.http.patch(
        f"/api/modules/{site.module_id}", json={"settings": {"volume": 7}}
    )
    assert changed.status_code == 200, changed.text

    site.edge.start()
    await site.edge.wait_ready()
    new_module = await wait_for_edge_copy(site, f"/api/modules/{created['id']}")
    assert new_module.json()["name"] == "Panel"
    old_module = await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    assert old_module.json()["settings"] == {"volume": 7}
    system = await wait_for_edge_copy(site, f"/api/systems/{site.system_id}")
    assert system.json()["modules"] == [site.module_id, created["id"]]


async def test_changes_reach_a_connected_edge_as_they_happen(site: Site) -> None:
    await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")

    started = time.monotonic()
    await site.http.patch(f"/api/modules/{site.module_id}", json={"settings": {"volume": 3}})
    changed = await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    assert changed.json()["settings"] == {"volume": 3}
    deleted = await site.http.delete(f"/api/modules/{site.module_id}")
    assert deleted.status_code == 204, deleted.text
    gone = await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    assert gone.status_code == 404
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"two changes took {elapsed:.1f}s to reach the edge"


async def test_a_deletion_made_while_the_edge_is_down_replicates(site: Site) -> None:
    await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    site.edge.stop()
    deleted = await site.http.delete(f"/api/modules/{site.module_id}")
    assert deleted.status_code == 204, deleted.text

    site.edge.start()
    gone = await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    assert gone.status_code == 404
    system = await wait_for_edge_copy(site, f"/api/systems/{site.system_id}")
    assert system.json()["modules"] == []


async def test_the_edge_replica_never_holds_an_edge_secret(site: Site) -> None:
    other = await site.http.post("/api/edges", json={"name": "Other site"})
    secrets = [site.secret, other.json()["secret"]]
    await wait_for_edge_copy(site, f"/api/edges/{other.json()['id']}")
    site.edge.stop()
    site.master.stop()

    edge_files = database_bytes(site.edge.workdir)
    for secret in secrets:
        assert secret.encode() not in edge_files
        assert secret.encode() in database_bytes(site.master.workdir), "the check can see one"
    async with opened(site.edge.workdir) as store:
        assert (await store.find("edge_secret")).total == 0
        assert len(await snapshot(store)) > 0


# --- crashes and outages ------------------------------------------------------------------


async def test_an_edge_killed_during_a_large_catch_up_ends_identical_to_the_master(
    tmp_path: Path,
) -> None:
    master = master_process(tmp_path).start()
    edge: EngineProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
            ids = await configure(master, http)
        master.stop()
        async with opened(master.workdir) as store:
            await store.insert_many(filler_modules(ids["driver_id"], FILLER_DOCUMENTS))
        master.start()
        await master.wait_ready()

        started = time.monotonic()
        edge = edge_process(tmp_path, master, ids["edge_id"], ids["secret"]).start()
        target = await metric(master, "engine_store_seq")

        async def under_way() -> bool:
            assert edge is not None
            return 0 < await metric(edge, "engine_replica_seq") < target

        await wait_until(
            under_way, timeout=SETTLE_S, interval=0.005, message="the catch-up to be under way"
        )
        edge.kill()
        interrupted_at = store_counter(edge.workdir, "replica_seq")

        edge.start()
        await edge.wait_ready()

        async def caught_up() -> bool:
            assert edge is not None
            return await metric(edge, "engine_replica_seq") >= target

        await wait_until(caught_up, timeout=SETTLE_S, message="the restarted edge to catch up")
        caught_up_s = time.monotonic() - started
        master.kill()  # no goodbye writes: the master stays as the edge last saw it
        edge.stop()

        async with opened(master.workdir) as master_store, opened(edge.workdir) as edge_store:
            master_copy, edge_copy = await snapshot(master_store), await snapshot(edge_store)
            assert await edge_store.replica_seq() == await master_store.last_seq()
        assert len(master_copy) > FILLER_DOCUMENTS
        assert edge_copy == master_copy
        assert 0 < interrupted_at < target
        assert caught_up_s < 20.0, f"{FILLER_DOCUMENTS} documents took {caught_up_s:.1f}s"
    finally:
        if edge is not None:
            edge.stop()
        master.stop()


async def test_an_edge_boots_from_its_replica_while_the_master_is_down(site: Site) -> None:
    await wait_for_edge_copy(site, f"/api/modules/{site.module_id}")
    site.edge.stop()
    site.master.stop()
    earlier_log = len(site.edge.log())

    site.edge.start()
    await site.edge.wait_ready()

    async with site.edge_client() as edge:
        ready = (await edge.get("/api/ready")).json()
        assert ready["modules"] == 1 and ready["replica_seq"] > 0, ready
        module = await edge.get(f"/api/modules/{site.module_id}")
        assert module.status_code == 200 and module.json()["name"] == "Echo"
        system = await edge.get(f"/api/systems/{site.system_id}")
        assert system.json()["modules"] == [site.module_id]
    assert "never synced" not in site.edge.log()[earlier_log:]


async def test_an_edge_that_never_synced_says_so_and_keeps_trying(tmp_path: Path) -> None:
    master = master_process(tmp_path).start()
    edge: EngineProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
            ids = await configure(master, http)
        master.stop()
        edge = edge_process(tmp_path, master, ids["edge_id"], ids["secret"]).start()

        async with httpx.AsyncClient(base_url=edge.url, headers=AUTH, timeout=10) as client:
            answer: dict[str, Any] = {}

            async def says_never_synced() -> bool:
                edge.check_alive()
                try:
                    response = await client.get("/api/ready")
                except httpx.TransportError:
                    return False
                answer.update(response.json(), status=response.status_code)
                return "never synced" in str(answer.get("phase"))

            await wait_until(says_never_synced, timeout=SETTLE_S, message="the never-synced phase")
            assert answer["status"] == 503
            await wait_until(
                lambda: failed_attempts(edge) >= 3,
                timeout=SETTLE_S,
                message="the edge to keep trying the master",
            )
            assert "never synced" in edge.log()

            master.start()
            await edge.wait_ready()
            module = await client.get(f"/api/modules/{ids['module_id']}")
            assert module.status_code == 200
    finally:
        if edge is not None:
            edge.stop()
        master.stop()


# --- helpers ------------------------------------------------------------------------------


def filler_modules(driver_id: str, count: int) -> list[tuple[str, str, JsonObject]]:
    """Modules in no system: documents to copy, nothing to run."""
    return [
        (
            f"mod-fill-{n:05d}",
            "module",
            {
                "driver_id": driver_id,
                "name": f"Filler {n}",
                "ip": "10.0.0.1",
                "port": 4999,
                "settings": {"zone": n % 40, "label": f"spare module number {n}"},
                "running": False,
            },
        )
        for n in range(count)
    ]


def failed_attempts(process: EngineProcess) -> int:
    return sum("link to" in line and "failed" in line for line in process.log().splitlines())


def database_path(workdir: Path) -> Path:
    return workdir / "engine.db"


def database_bytes(workdir: Path) -> bytes:
    """The database file with its write-ahead log, if any is left."""
    return b"".join(path.read_bytes() for path in sorted(workdir.glob("engine.db*")))


async def metric(process: EngineProcess, name: str) -> int:
    """A gauge from a running server's ``/metrics`` (0 while it does not answer yet)."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            text = (await http.get(f"{process.url}/metrics")).text
    except httpx.HTTPError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    return 0


def store_counter(workdir: Path, key: str) -> int:
    """``replica_seq`` or ``last_seq`` of a stopped server's store (0 before it has one)."""
    path = database_path(workdir)
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


@asynccontextmanager
async def opened(workdir: Path) -> AsyncIterator[SqliteStore]:
    """A server's SQLite store, opened once the server has stopped."""
    store = SqliteStore(database_path(workdir))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def snapshot(store: SqliteStore) -> Snapshot:
    """Every live replicated document: id → (type, version, body)."""
    documents: Snapshot = {}
    since, more = 0, True
    while more:
        batch = await store.changes_since(since, limit=5000)
        for change in batch.changes:
            if not change.deleted:
                documents[change.id] = (change.type, change.version, change.body or {})
        since, more = batch.last_seq, batch.more
    return documents


async def test_an_edge_away_longer_than_the_retention_resyncs_and_ends_identical(
    tmp_path: Path,
) -> None:
    """The master purges the deletions the edge missed; the edge must start over."""
    master = master_process(tmp_path)
    master.env.update(
        {"ENGINE_TOMBSTONE_RETENTION_S": "1", "ENGINE_HOUSEKEEPING_INTERVAL_S": "0.2"}
    )
    master.start()
    edge: EngineProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
            ids = await configure(master, http)
            spare = await http.post(
                "/api/modules", json={"driver_id": ids["driver_id"], "name": "Spare"}
            )
            edge = edge_process(tmp_path, master, ids["edge_id"], ids["secret"]).start()
            await edge.wait_ready()
            target = await metric(master, "engine_store_seq")
            await wait_until(
                lambda: caught_up(edge, target), timeout=SETTLE_S, message="the first sync"
            )
            edge.stop()

            gone = await http.delete(f"/api/modules/{spare.json()['id']}")
            assert gone.status_code == 204, gone.text
            created = await http.post(
                "/api/modules", json={"driver_id": ids["driver_id"], "name": "Added"}
            )
            assert created.status_code == 201, created.text
            changed = await http.patch(
                f"/api/modules/{ids['module_id']}", json={"settings": {"volume": 9}}
            )
            assert changed.status_code == 200, changed.text
            await wait_until(
                lambda: purged_on(master),
                timeout=SETTLE_S,
                message="the master to purge the deletion the edge missed",
            )

            edge.start()
            await edge.wait_ready()

            async def level_with_master() -> bool:
                assert edge is not None
                return await caught_up(edge, await metric(master, "engine_store_seq"))

            await wait_until(level_with_master, timeout=SETTLE_S, message="the resync")
        master.kill()  # no goodbye writes: the master stays as the edge last saw it
        edge.stop()
        assert "full resync" in edge.log()

        async with opened(master.workdir) as master_store, opened(edge.workdir) as edge_store:
            master_copy, edge_copy = await snapshot(master_store), await snapshot(edge_store)
        assert spare.json()["id"] not in edge_copy
        assert edge_copy[created.json()["id"]][2]["name"] == "Added"
        assert edge_copy[ids["module_id"]][2]["settings"] == {"volume": 9}
        assert edge_copy == master_copy
    finally:
        if edge is not None:
            edge.stop()
        master.stop()


async def caught_up(process: EngineProcess, seq: int) -> bool:
    process.check_alive()
    return await metric(process, "engine_replica_seq") >= seq


async def purged_on(process: EngineProcess) -> bool:
    return await metric(process, "engine_tombstones_purged_total") >= 1
