"""``GET /api/systems/{id}/servers`` on a master: its own rooms and an edge's."""

from __future__ import annotations

import httpx

from tests.unit.routers.test_crud import assert_problem, create


async def test_a_master_names_the_servers_of_each_room(api: httpx.AsyncClient) -> None:
    hall = await create(api, "/api/systems", {"name": "Hall"})
    answer = await api.get(f"/api/systems/{hall['id']}/servers")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "system_id": hall["id"],
        "name": "Hall",
        "location": None,
        "controller": "master",
        "epoch": 0,
        "online": None,
        "failover": None,
        "failover_in": None,
        "reason": "the master runs its own rooms",
        "servers": [
            {"node": "master", "role": "master", "url": "http://master.test", "controls": True}
        ],
        "answered_by": "master",
    }

    edge = await create(
        api, "/api/edges", {"name": "Sydney", "timeout": 30, "api_url": "http://edge.test:8001"}
    )
    lobby = await create(api, "/api/systems", {"name": "Lobby", "edge_control_id": edge["id"]})
    body = (await api.get(f"/api/systems/{lobby['id']}/servers")).json()
    # The edge has never connected: nobody controls its room yet, its home comes first.
    assert (body["location"], body["controller"], body["online"]) == (edge["id"], "none", False)
    assert (body["failover"], body["reason"]) == (True, "the master has not yet seen this edge")
    assert [(s["node"], s["url"], s["controls"]) for s in body["servers"]] == [
        (f"edge:{edge['id']}", "http://edge.test:8001", False),
        ("master", "http://master.test", False),
    ]


async def test_discovery_needs_a_caller_and_a_system(api: httpx.AsyncClient) -> None:
    hall = await create(api, "/api/systems", {"name": "Hall"})
    assert_problem(
        await api.get(f"/api/systems/{hall['id']}/servers", headers={"Authorization": ""}), 401
    )
    assert_problem(await api.get("/api/systems/sys-none/servers"), 404)
