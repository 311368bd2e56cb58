"""A real master process on the embedded store, driven over HTTP like curl would."""

from __future__ import annotations

import httpx
import pytest

from app.node_process import NodeProcess

pytestmark = pytest.mark.integration


async def test_master_serves_configuration(client: httpx.AsyncClient, master: NodeProcess) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert health.headers["x-engine-node"] == "master"

    driver = (
        await client.post(
            "/api/drivers",
            json={
                "name": "TCP line",
                "file": "generic/tcp_line.py",
                "class_name": "TcpLine",
            },
        )
    ).json()
    edge = await client.post("/api/edges", json={"name": "Sydney"})
    assert edge.status_code == 201 and edge.json()["secret"]
    system = (
        await client.post(
            "/api/systems",
            json={
                "name": "Room",
                "edge_control_id": edge.json()["id"],
            },
        )
    ).json()
    module = await client.post(
        "/api/modules",
        json={
            "driver_id": driver["id"],
            "name": "Display",
            "ip": "127.0.0.1",
            "port": 5000,
            "system_id": system["id"],
        },
    )
    assert module.status_code == 201

    bad = await client.post(
        "/api/edges", json={"name": "x", "window_start": "99 * * * *", "window_length": 5}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "window_start"
    assert (await client.get("/api/edges", headers={"Authorization": ""})).status_code == 401

    # The data survives a restart: one SQLite file per server.
    await master.stop()
    await master.start()
    await master.wait_ready()
    again = await client.get(f"/api/systems/{system['id']}")
    assert again.json()["modules"] == [module.json()["id"]]
