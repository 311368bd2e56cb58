"""No token or secret in any log line of either server, access logs on.

A master and an edge as real processes: client websockets with ``?token=`` (a valid
and an invalid one), a call proxied from the master to the edge, a redirect followed
with ``access_token``, and a failover. Then both servers' complete logs are searched
for every credential used.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.node_process import NodeProcess
from app.urls import CLIENT_PATH, websocket_url
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ADMIN = "log-check-admin-token-0123456789"
INVALID = "not-a-real-token-9876543210"
FAST = {"ENGINE_LINK_RETRY_S": "0.3", "ENGINE_PING_INTERVAL_S": "0.3", "ENGINE_BOOT_WAIT_S": "0.5"}


def ws_url(process: NodeProcess, token: str) -> str:
    return websocket_url(process.url, f"{CLIENT_PATH}?token={token}")


async def talk_over_ws(process: NodeProcess, token: str) -> None:
    """Open the client websocket with ``?token=`` and exchange one ping."""
    try:
        async with connect(ws_url(process, token), open_timeout=5) as websocket:
            await websocket.send("ping")
            assert await websocket.recv() == "pong"
    except (ConnectionClosed, InvalidStatus):
        pass  # an invalid token is refused: its URL was logged all the same


async def test_no_credential_reaches_either_log(tmp_path: Path) -> None:
    master = await NodeProcess(
        "master",
        tmp_path / "master",
        settings={"ENGINE_ADMIN_TOKEN": ADMIN, **FAST},
        args=("--access-log",),
    ).start()
    edge: NodeProcess | None = None
    auth = {"Authorization": f"Bearer {ADMIN}"}
    try:
        await master.wait_ready()
        async with httpx.AsyncClient(base_url=master.url, headers=auth, timeout=10) as http:
            edge = NodeProcess("edge", tmp_path / "edge", args=("--access-log",))
            driver = await http.post(
                "/api/drivers",
                json={
                    "name": "Echo",
                    "file": "generic/echo.py",
                    "class_name": "Echo",
                    "role": "service",
                },
            )
            # Failover on once the edge runs: a new location is awaited from its creation.
            created = await http.post(
                "/api/edges",
                json={"name": "Site", "timeout": 1, "failover": False, "api_url": edge.url},
            )
            secret = created.json()["secret"]
            edge_id = created.json()["id"]
            system = await http.post(
                "/api/systems", json={"name": "Room", "edge_control_id": edge_id}
            )
            system_id = system.json()["id"]
            await http.post(
                "/api/modules",
                json={"driver_id": driver.json()["id"], "name": "Echo", "system_id": system_id},
            )
            user = await http.post("/api/users", json={"name": "Panel", "admin": True})
            issued = await http.post(f"/api/users/{user.json()['id']}/tokens", json={})
            token = issued.json()["token"]

            edge.settings.update(
                {
                    "ENGINE_EDGE_ID": edge_id,
                    "ENGINE_EDGE_SECRET": secret,
                    "ENGINE_MASTER_URL": master.url,
                    **FAST,
                }
            )
            await edge.start()
            await edge.wait_ready()

            async def edge_controls() -> bool:
                control = await http.get(f"/api/edges/{edge_id}/control")
                return bool(control.json()["controller"] == "edge" and control.json()["online"])

            await wait_until(edge_controls, timeout=15, message="the edge to take control")
            patched = await http.patch(f"/api/edges/{edge_id}", json={"failover": True})
            assert patched.status_code == 200, patched.text

            for process in (master, edge):
                await talk_over_ws(process, token)
                await talk_over_ws(process, INVALID)

            state = f"/api/systems/{system_id}/state"
            proxied = await http.get(
                state, params={"access_token": token}, headers={"Prefer": "routing=proxy"}
            )
            assert proxied.status_code == 200 and "via" in proxied.headers, proxied.text
            async with httpx.AsyncClient(follow_redirects=True, timeout=10) as anonymous:
                followed = await anonymous.get(
                    f"{master.url}{state}", params={"access_token": token}
                )
            assert followed.status_code == 200, followed.text
            assert followed.history and followed.history[0].status_code == 307
            assert followed.headers["x-engine-node"] == f"edge:{edge_id}"

            await edge.kill()

            async def master_controls() -> bool:
                control = await http.get(f"/api/edges/{edge_id}/control")
                return bool(control.json()["controller"] == "master")

            await wait_until(master_controls, timeout=20, message="the failover to the master")

            async def master_answers() -> bool:
                after = await http.get(state, params={"access_token": token})
                return after.status_code == 200 and after.headers["x-engine-node"] == "master"

            await wait_until(master_answers, timeout=10, message="the master to answer itself")
            await talk_over_ws(master, token)
    finally:
        if edge is not None:
            await edge.stop()
        await master.stop()

    logs = {"master": master.log(), "edge": edge.log() if edge else ""}
    for name, text in logs.items():
        for credential in (token, ADMIN, INVALID, secret):
            assert credential not in text, f"{name}'s log holds a credential"
        assert "token=[redacted]" in text, f"{name}'s log shows no redacted request at all"
    assert "access_token=[redacted]" in logs["master"] + logs["edge"]
