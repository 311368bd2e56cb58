"""Client routing between a real master and edge: redirects, proxying, edge writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.client_ws import bind, next_message
from tests.support.engine import EngineProcess, free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TOKEN = "routing-admin"
FAST = {"ENGINE_LINK_RETRY_S": "0.3", "ENGINE_PING_INTERVAL_S": "0.3", "ENGINE_BOOT_WAIT_S": "0.5"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Pair:
    master: EngineProcess
    edge: EngineProcess
    edge_id: str
    edge_system: str
    master_system: str


def echo(system_id: str, value: object) -> tuple[str, dict[str, object]]:
    return f"/api/systems/{system_id}/exec", {"module": "Echo", "method": "echo", "args": [value]}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    master = EngineProcess(
        "master", tmp_path / "master", env={"ENGINE_ADMIN_TOKEN": TOKEN, **FAST}
    ).start()
    edge_port = free_port()
    edge: EngineProcess | None = None
    try:
        await master.wait_ready()
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=10) as http:
            driver = (
                await http.post(
                    "/api/drivers",
                    json={
                        "name": "Echo",
                        "file": "generic/echo.py",
                        "class_name": "Echo",
                        "role": "service",
                    },
                )
            ).json()
            created = (
                await http.post(
                    "/api/edges",
                    json={
                        "name": "Site",
                        "timeout": 30,
                        "api_url": f"http://127.0.0.1:{edge_port}",
                    },
                )
            ).json()
            systems = {}
            for name, location in (("edge", created["id"]), ("master", None)):
                system = (
                    await http.post(
                        "/api/systems",
                        json={
                            "name": name,
                            "edge_control_id": location,
                        },
                    )
                ).json()
                await http.post(
                    "/api/modules",
                    json={
                        "driver_id": driver["id"],
                        "name": "Echo",
                        "system_id": system["id"],
                    },
                )
                systems[name] = system["id"]
        edge = EngineProcess(
            "edge",
            tmp_path / "edge",
            port=edge_port,
            env={
                "ENGINE_EDGE_ID": created["id"],
                "ENGINE_EDGE_SECRET": created["secret"],
                "ENGINE_MASTER_URL": master.url,
                **FAST,
            },
        ).start()
        await edge.wait_ready()
        result = Pair(master, edge, created["id"], systems["edge"], systems["master"])
        await wait_for_answer(result.edge.url, result.edge_system)
        yield result
    finally:
        if edge is not None:
            edge.stop()
        master.stop()


async def wait_for_answer(base_url: str, system_id: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=5) as http:

        async def answers() -> bool:
            path, body = echo(system_id, "ping")
            response = await http.post(path, json=body)
            return response.status_code == 200

        await wait_until(answers, timeout=20, message=f"{system_id} to answer at {base_url}")


async def test_master_redirects_to_the_edge_or_proxies_on_request(pair: Pair) -> None:
    path, body = echo(pair.edge_system, "hello")
    async with httpx.AsyncClient(base_url=pair.master.url, headers=AUTH, timeout=10) as http:
        redirected = await http.post(f"{path}?trace=1", json=body)
        assert redirected.status_code == 307
        assert redirected.headers["location"] == f"{pair.edge.url}{path}?trace=1"

        proxied = await http.post(path, json=body, headers={"Prefer": "routing=proxy"})
        assert proxied.status_code == 200, proxied.text
        assert proxied.json() == {"result": "hello"}
        assert proxied.headers["via"] == "1.1 master"
        assert proxied.headers["preference-applied"] == "routing=proxy"
        assert proxied.headers["x-engine-node"] == f"edge:{pair.edge_id}"

        # The controller's date and server headers are not repeated beside ours.
        for header in ("date", "server", "x-engine-node", "content-length"):
            assert len(proxied.headers.get_list(header)) == 1, (header, proxied.headers)

        state = await http.get(f"/api/systems/{pair.edge_system}/state")
        assert state.status_code == 307

        # Authentication comes before routing: an anonymous caller learns nothing.
        for system_id in (pair.edge_system, "sys-unknown"):
            anonymous = await http.post(
                f"/api/systems/{system_id}/exec", json=body, headers={"Authorization": ""}
            )
            assert anonymous.status_code == 401, anonymous.text
            assert "location" not in anonymous.headers

        # Answers given by routing are counted under the route's operation.
        metrics = (await http.get("/metrics")).text
        for status in ("307", "200", "401"):
            assert f'method="POST",operation="execSystem",status="{status}"' in metrics, status
        assert 'operation="unmatched"' not in metrics


async def test_a_following_client_needs_not_know_who_controls(pair: Pair) -> None:
    # Clients drop Authorization on a cross-origin redirect: the query token survives it.
    for start in (pair.master.url, pair.edge.url):
        async with httpx.AsyncClient(
            base_url=start, params={"access_token": TOKEN}, timeout=10, follow_redirects=True
        ) as http:
            for system_id, node in (
                (pair.edge_system, f"edge:{pair.edge_id}"),
                (pair.master_system, "master"),
            ):
                path, body = echo(system_id, start)
                response = await http.post(path, json=body)
                assert response.status_code == 200, (start, system_id, response.text)
                assert response.json() == {"result": start}
                assert response.headers["x-engine-node"] == node


async def test_configuration_written_at_the_edge_lands_on_the_master(pair: Pair) -> None:
    async with httpx.AsyncClient(
        base_url=pair.edge.url, params={"access_token": TOKEN}, timeout=10, follow_redirects=True
    ) as http:
        created = await http.post("/api/users", json={"name": "Written at the edge"})
        assert created.status_code == 201, created.text
        assert created.headers["x-engine-node"] == "master"
        user_id = created.json()["id"]

        async def replicated() -> bool:
            return (await http.get(f"/api/users/{user_id}")).status_code == 200

        await wait_until(replicated, timeout=10, message="the write to reach the edge's replica")
        read = await http.get(f"/api/users/{user_id}")
        assert read.headers["x-engine-node"] == f"edge:{pair.edge_id}", "reads stay local"


async def test_after_takeover_the_edge_sends_clients_to_the_master(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.master.url, headers=AUTH, timeout=10) as http:
        taken = await http.post(f"/api/edges/{pair.edge_id}/takeover")
        assert taken.status_code == 200, taken.text
        assert taken.json()["controller"] == "master"
    await wait_for_answer(pair.master.url, pair.edge_system)
    path, body = echo(pair.edge_system, "after takeover")
    async with httpx.AsyncClient(base_url=pair.edge.url, headers=AUTH, timeout=10) as http:
        response = await http.post(path, json=body)
        assert response.status_code == 307
        assert response.headers["location"] == f"{pair.master.url}{path}"
        followed = await http.post(path, json=body, headers={"Prefer": "routing=proxy"})
        assert followed.status_code == 200, followed.text
        assert followed.headers["x-engine-node"] == "master"
        assert followed.headers["via"] == f"1.1 edge:{pair.edge_id}"


async def test_after_failover_the_returning_edge_sends_clients_to_the_master(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.master.url, headers=AUTH, timeout=10) as http:
        patched = await http.patch(f"/api/edges/{pair.edge_id}", json={"timeout": 1})
        assert patched.status_code == 200
        pair.edge.kill()

        async def master_controls() -> bool:
            control = (await http.get(f"/api/edges/{pair.edge_id}/control")).json()
            return bool(control["controller"] == "master" and control["failover_active"])

        await wait_until(master_controls, timeout=15, message="the master to fail over")
        pair.edge.start()
        await pair.edge.wait_ready()

        async def edge_back_online() -> bool:
            return bool((await http.get(f"/api/edges/{pair.edge_id}/control")).json()["online"])

        await wait_until(edge_back_online, timeout=15, message="the edge to reconnect")

    path, body = echo(pair.edge_system, "after failover")
    async with httpx.AsyncClient(base_url=pair.edge.url, headers=AUTH, timeout=10) as http:
        response = await http.post(path, json=body)
        assert response.status_code == 307, response.text
        assert response.headers["location"] == f"{pair.master.url}{path}"
    async with httpx.AsyncClient(
        base_url=pair.edge.url, params={"access_token": TOKEN}, timeout=10, follow_redirects=True
    ) as http:
        followed = await http.post(path, json=body)
        assert followed.json() == {"result": "after failover"}
        assert followed.headers["x-engine-node"] == "master"


async def test_a_bound_client_follows_a_handover(pair: Pair) -> None:
    url = pair.master.url.replace("http://", "ws://") + f"/api/ws?token={TOKEN}"
    async with connect(url) as websocket:

        async def receive(kind: str) -> dict[str, Any]:
            return await next_message(websocket, kind)

        await bind(websocket, 1, pair.edge_system, "Echo", "power")
        async with httpx.AsyncClient(base_url=pair.master.url, headers=AUTH, timeout=10) as http:
            taken = await http.post(f"/api/edges/{pair.edge_id}/takeover")
            assert taken.json()["controller"] == "master"
            redirect = await receive("redirect")
            assert redirect["url"] == pair.master.url.replace("http://", "ws://") + "/api/ws"
            assert redirect["meta"] == {"sys": pair.edge_system}
            # The binding now follows the master's own copy of the module.
            await http.post(
                f"/api/systems/{pair.edge_system}/exec",
                json={"module": "Echo", "method": "set", "args": ["power", "on"]},
            )
            while (await receive("notify"))["value"] != "on":
                pass
