"""A master and an edge as real processes, linked over TLS on loopback."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.link import Challenge, EdgeHandshake, encode
from tests.support.client_ws import bind, next_message
from tests.support.engine import EngineProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TOKEN = "link-admin"
FAST = {"ENGINE_LINK_RETRY_S": "0.3", "ENGINE_PING_INTERVAL_S": "0.3", "ENGINE_BOOT_WAIT_S": "0.5"}


@dataclass
class Site:
    master: EngineProcess
    edge: EngineProcess
    http: httpx.AsyncClient
    edge_id: str
    system_id: str
    module_id: str
    ca_path: Path
    secret: str


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path, Path, Path]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    return authority, ca_path, cert_path, key_path


@pytest.fixture
async def site(tmp_path: Path, ca: tuple[Any, Path, Path, Path]) -> AsyncIterator[Site]:
    _, ca_path, cert_path, key_path = ca
    master = EngineProcess(
        "master",
        tmp_path / "master",
        tls=True,
        env={
            "ENGINE_ADMIN_TOKEN": TOKEN,
            "ENGINE_TLS_CERT": str(cert_path),
            "ENGINE_TLS_KEY": str(key_path),
            **FAST,
        },
    ).start()
    verify = ssl.create_default_context(cafile=str(ca_path))
    edge: EngineProcess | None = None
    async with httpx.AsyncClient(
        base_url=master.url, headers={"Authorization": f"Bearer {TOKEN}"}, verify=verify, timeout=10
    ) as http:
        try:
            await master.wait_ready(verify=verify)
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
            created = (await http.post("/api/edges", json={"name": "Site", "timeout": 30})).json()
            system = (
                await http.post(
                    "/api/systems",
                    json={
                        "name": "Room",
                        "edge_control_id": created["id"],
                    },
                )
            ).json()
            module = (
                await http.post(
                    "/api/modules",
                    json={
                        "driver_id": driver["id"],
                        "name": "Echo",
                        "system_id": system["id"],
                    },
                )
            ).json()
            edge = EngineProcess(
                "edge",
                tmp_path / "edge",
                env={
                    "ENGINE_EDGE_ID": created["id"],
                    "ENGINE_EDGE_SECRET": created["secret"],
                    "ENGINE_MASTER_URL": master.url,
                    "ENGINE_TLS_CA": str(ca_path),
                    **FAST,
                },
            ).start()
            await edge.wait_ready()
            yield Site(
                master,
                edge,
                http,
                created["id"],
                system["id"],
                module["id"],
                ca_path,
                created["secret"],
            )
        finally:
            if edge is not None:
                edge.stop()
            master.stop()


async def exec_echo(http: httpx.AsyncClient, system_id: str, value: Any) -> httpx.Response:
    return await http.post(
        f"/api/systems/{system_id}/exec",
        json={"module": "Echo", "method": "echo", "args": [value]},
    )


async def wait_for_edge_control(site: Site) -> None:
    async def edge_answers() -> bool:
        site.edge.check_alive()
        response = await exec_echo(site.http, site.system_id, "ping")
        return response.status_code == 200

    await wait_until(edge_answers, timeout=20, message="the edge module to answer via the master")


async def test_exec_state_and_control_through_the_master(site: Site) -> None:
    await wait_for_edge_control(site)
    response = await exec_echo(site.http, site.system_id, {"n": 1})
    assert response.json() == {"result": {"n": 1}}
    control = (await site.http.get(f"/api/edges/{site.edge_id}/control")).json()
    assert control["controller"] == "edge"
    assert control["online"] is True
    assert control["master_url"] == site.master.url
    probe = await site.http.get(f"/api/edges/{site.edge_id}/controller")
    assert probe.status_code == 503, "the master does not control the edge's devices"
    events = (await site.http.get(f"/api/edges/{site.edge_id}/events")).json()
    assert events[0]["kind"] == "connected"


async def test_many_concurrent_execs_over_one_link(site: Site) -> None:
    await wait_for_edge_control(site)
    responses = await asyncio.gather(*(exec_echo(site.http, site.system_id, n) for n in range(200)))
    assert [r.json()["result"] for r in responses] == list(range(200))


async def test_killing_the_edge_fails_pending_requests_at_once(site: Site) -> None:
    await wait_for_edge_control(site)
    slow = [
        asyncio.create_task(
            site.http.post(
                f"/api/systems/{site.system_id}/exec",
                json={"module": "Echo", "method": "sleep", "args": [30]},
            )
        )
        for _ in range(20)
    ]
    await asyncio.sleep(0.3)  # let the calls reach the edge before it dies
    killed = time.monotonic()
    site.edge.kill()
    responses = await asyncio.gather(*slow)
    elapsed = time.monotonic() - killed
    assert elapsed < 1.0 + 0.9, f"pending requests took {elapsed:.2f}s to fail"
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert site.edge_id in response.json()["detail"]


async def test_bad_handshakes_leave_the_real_link_alone(site: Site) -> None:
    await wait_for_edge_control(site)
    url = site.master.url.replace("https://", "wss://") + "/api/edge/link"
    tls = ssl.create_default_context(cafile=str(site.ca_path))

    # A wrong proof: closed with 4401 and no detail.
    async with connect(url, ssl=tls) as websocket:
        challenge = json.loads(await websocket.recv())
        await websocket.send(
            json.dumps(
                {
                    "type": "hello",
                    "edge_id": site.edge_id,
                    "boot_time": 0.0,
                    "nonce": "ab" * 32,
                    "proof": "cd" * 32,
                    "devices_loaded": False,
                    "replica_seq": 0,
                    "commit": None,
                }
            )
        )
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert closed.value.rcvd.reason == ""
        assert challenge["type"] == "challenge"

    # A replayed handshake: a hello that was valid for one challenge, sent again.
    async with connect(url, ssl=tls) as websocket:
        challenge = Challenge.model_validate_json(await websocket.recv())
        handshake = EdgeHandshake(
            site.edge_id,
            site.secret,
            boot_time=0.0,
            devices_loaded=False,
            replica_seq=0,
            commit=None,
        )
        recorded = encode(handshake.receive_challenge(challenge))
        # Walk away before the welcome: the hello was never used to open a link.
    async with connect(url, ssl=tls) as websocket:
        await websocket.recv()  # a fresh challenge the recorded hello does not answer
        await websocket.send(recorded)
        with pytest.raises(ConnectionClosed) as replayed:
            await websocket.recv()
        assert replayed.value.rcvd is not None and replayed.value.rcvd.code == 4401

    # Garbage instead of a hello.
    async with connect(url, ssl=tls) as websocket:
        await websocket.recv()
        await websocket.send("{not json")
        with pytest.raises(ConnectionClosed):
            await websocket.recv()

    response = await exec_echo(site.http, site.system_id, "still here")
    assert response.json() == {"result": "still here"}


async def test_bindings_and_debug_lines_reach_the_masters_clients(site: Site) -> None:
    await wait_for_edge_control(site)
    url = site.master.url.replace("https://", "wss://") + f"/api/ws?token={TOKEN}"
    tls = ssl.create_default_context(cafile=str(site.ca_path))
    async with connect(url, ssl=tls) as websocket:

        async def receive(kind: str) -> dict[str, Any]:
            return await next_message(websocket, kind)

        await bind(websocket, 1, site.system_id, "Echo", "power")
        assert (await receive("notify"))["value"] is None
        await site.http.post(
            f"/api/systems/{site.system_id}/exec",
            json={"module": "Echo", "method": "set", "args": ["power", True]},
        )
        changed = await receive("notify")
        assert changed["value"] is True
        assert changed["meta"] == {
            "sys": site.system_id,
            "mod": "Echo",
            "index": 1,
            "name": "power",
        }

        await websocket.send(json.dumps({"id": 2, "cmd": "debug", "mod_id": site.module_id}))
        assert (await receive("success"))["id"] == 2
        await site.http.post(
            f"/api/systems/{site.system_id}/exec",
            json={"module": "Echo", "method": "fail", "args": ["boom"]},
        )
        line = await receive("debug")
        assert (line["mod"], line["klass"], line["level"]) == (site.module_id, "Echo", "error")
        assert "boom" in line["msg"] and "Traceback" not in line["msg"]


async def test_reload_with_an_inline_edit_reaches_the_edge(site: Site) -> None:
    await wait_for_edge_control(site)
    driver = (await site.http.get("/api/drivers")).json()["items"][0]
    source = (Path(__file__).resolve().parents[2] / "drivers/generic/echo.py").read_text()
    edited = source.replace("        return value\n", "        return ['v2', value]\n", 1)
    reloaded = await site.http.post(
        f"/api/drivers/{driver['id']}/reload", json={"files": {"generic/echo.py": edited}}
    )
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["edges"][site.edge_id]["modules"] == [site.module_id]
    response = await exec_echo(site.http, site.system_id, "x")
    assert response.json() == {"result": ["v2", "x"]}

    status = await site.http.post(
        f"/api/edges/{site.edge_id}/repository", json={"action": "status"}
    )
    assert status.status_code == 200, status.text
    assert status.json()["dirty"] is True
    edge = (await site.http.get(f"/api/edges/{site.edge_id}")).json()
    assert edge["commit"] == status.json()["commit"]
