"""Device keys: issued, listed and revoked by admins; each reads and calls its own room only."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from app.node import Node
from tests.unit.routers.test_crud import assert_problem, create
from tests.unit.routers.test_module_ops import add_driver, add_module, wait_running


@dataclass(frozen=True)
class Rooms:
    mine: str
    other: str
    module_id: str


@pytest.fixture
async def rooms(api: httpx.AsyncClient, node: Node) -> Rooms:
    """Two systems, each with an Echo module."""
    driver_id = await add_driver(api, "generic/echo.py", "Echo", "service")
    ids = []
    for name in ("Mine", "Other"):
        system = await create(api, "/api/systems", {"name": name})
        module_id = await add_module(api, driver_id, "Echo", system_id=system["id"])
        await wait_running(node, module_id)
        ids.append((str(system["id"]), module_id))
    return Rooms(ids[0][0], ids[1][0], ids[0][1])


async def issue(api: httpx.AsyncClient, system_id: str) -> dict[str, str]:
    response = await api.post(f"/api/systems/{system_id}/keys", json={"name": "lobby panel"})
    assert response.status_code == 201, response.text
    return dict(response.json())


def as_key(issued: dict[str, str]) -> dict[str, str]:
    return {"Authorization": "", "X-API-Key": issued["key"]}


async def test_a_key_is_shown_once_with_its_panel_link_and_listed_without_it(
    api: httpx.AsyncClient, rooms: Rooms
) -> None:
    issued = await issue(api, rooms.mine)
    assert issued["key"].startswith("eng_")
    assert issued["panel_url"] == (
        f"http://master.test/panel/?system={rooms.mine}#x-api-key={issued['key']}"
    )
    listed = (await api.get(f"/api/systems/{rooms.mine}/keys")).json()
    assert [(k["id"], k["name"], k["created_by"]) for k in listed] == [
        (issued["id"], "lobby panel", "user-admin")
    ]
    assert issued["key"] not in str(listed) and "hash" not in listed[0]
    assert (await api.get(f"/api/systems/{rooms.other}/keys")).json() == []
    assert_problem(await api.post("/api/systems/sys-none/keys", json={}), 404)
    assert_problem(await api.post(f"/api/systems/{rooms.mine}/keys", json={"name": ""}), 422)


async def test_a_key_reads_and_calls_its_own_room_and_nothing_else(
    api: httpx.AsyncClient, rooms: Rooms
) -> None:
    key = as_key(await issue(api, rooms.mine))
    mine, other = f"/api/systems/{rooms.mine}", f"/api/systems/{rooms.other}"
    assert (await api.get(f"{mine}/state", headers=key)).status_code == 200
    assert (await api.get(f"{mine}/funcs?module=Echo", headers=key)).status_code == 200
    assert (await api.get(f"{mine}/servers", headers=key)).status_code == 200
    called = await api.post(
        f"{mine}/exec", json={"module": "Echo", "method": "echo", "args": [7]}, headers=key
    )
    assert called.json() == {"result": 7}
    placeos = "/api/engine/v2/systems"
    assert (await api.get(f"{placeos}/{rooms.mine}", headers=key)).status_code == 200
    executed = await api.post(f"{placeos}/{rooms.mine}/Echo_1/echo", json=[8], headers=key)
    assert executed.json() == 8

    for method, path in [
        ("GET", f"{other}/state"),
        ("POST", f"{other}/exec"),
        ("GET", f"{other}/servers"),
        ("GET", f"{placeos}/{rooms.other}"),
        ("GET", f"{placeos}/{rooms.other}/Echo_1"),
        ("GET", placeos),
        ("GET", mine),
        ("GET", "/api/systems"),
        ("GET", "/api/edges"),
        ("GET", "/api/users/current"),
        ("GET", f"/api/modules/{rooms.module_id}/state"),
        ("POST", f"/api/modules/{rooms.module_id}/exec"),
        ("POST", f"{mine}/stop"),
        ("POST", f"{mine}/keys"),
        ("GET", "/api/status"),
    ]:
        body = {"module": "Echo", "method": "echo", "args": [1]} if method == "POST" else None
        refused = await api.request(method, path, json=body, headers=key)
        assert_problem(refused, 403)
        assert "only its own room" in refused.json()["detail"], path


async def test_a_revoked_key_is_refused_at_its_next_request(
    api: httpx.AsyncClient, rooms: Rooms
) -> None:
    issued = await issue(api, rooms.mine)
    state = f"/api/systems/{rooms.mine}/state"
    assert (await api.get(state, headers=as_key(issued))).status_code == 200  # now cached
    revoked = await api.delete(f"/api/systems/{rooms.mine}/keys/{issued['id']}")
    assert revoked.status_code == 204
    assert_problem(await api.get(state, headers=as_key(issued)), 401)
    assert_problem(await api.delete(f"/api/systems/{rooms.mine}/keys/{issued['id']}"), 404)
    # A key is revoked through its own system only, and user tokens are not device keys.
    other = await issue(api, rooms.other)
    assert_problem(await api.delete(f"/api/systems/{rooms.mine}/keys/{other['id']}"), 404)
    assert_problem(await api.delete(f"/api/systems/{rooms.mine}/keys/tok-bootstrap"), 404)


async def test_deleting_a_system_revokes_its_keys(api: httpx.AsyncClient, rooms: Rooms) -> None:
    issued = await issue(api, rooms.mine)
    state = f"/api/systems/{rooms.mine}/state"
    assert (await api.get(state, headers=as_key(issued))).status_code == 200
    assert (await api.delete(f"/api/systems/{rooms.mine}")).status_code == 204
    assert_problem(await api.get(state, headers=as_key(issued)), 401)


async def test_only_system_admins_manage_keys(api: httpx.AsyncClient, rooms: Rooms) -> None:
    user = await create(api, "/api/users", {"name": "Tech"})
    token = (await api.post(f"/api/users/{user['id']}/tokens", json={})).json()["token"]
    as_user = {"Authorization": f"Bearer {token}"}
    keys = f"/api/systems/{rooms.mine}/keys"
    assert_problem(await api.post(keys, json={}, headers=as_user), 403)
    assert_problem(await api.get(keys, headers=as_user), 403)
    assert_problem(await api.post(keys, json={}, headers={"Authorization": ""}), 401)
