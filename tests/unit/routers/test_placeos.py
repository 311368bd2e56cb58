"""The PlaceOS API front ends call: the authority and the systems routes of ts-client."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest

from app.node import Node
from app.node_process import free_port
from app.routers.placeos import module_position, placeos_functions
from app.services.routing import Placement
from tests.unit.routers.test_crud import create
from tests.unit.routers.test_module_ops import add_driver, add_module, wait_running

V2 = "/api/engine/v2/systems"


@dataclass(frozen=True)
class Room:
    system_id: str
    first: str
    second: str


@pytest.fixture
async def room(api: httpx.AsyncClient, node: Node) -> Room:
    """A system with two Echo modules (Echo_1, Echo_2)."""
    driver_id = await add_driver(api, "generic/echo.py", "Echo", "service")
    system = await create(api, "/api/systems", {"name": "Huddle", "description": "2nd floor"})
    ids = [await add_module(api, driver_id, "Echo", system_id=system["id"]) for _ in range(2)]
    for module_id in ids:
        await wait_running(node, module_id)
    return Room(str(system["id"]), *ids)


async def test_authority_is_public_and_selects_the_v2_api(api: httpx.AsyncClient) -> None:
    response = await api.get("/auth/authority", headers={"Authorization": ""})
    assert response.status_code == 200
    authority = response.json()
    assert authority["version"].startswith("2.")
    assert authority["session"] is False
    assert "{{url}}" in authority["login_url"]


async def test_systems_in_placeos_shape(api: httpx.AsyncClient, room: Room) -> None:
    await create(api, "/api/systems", {"name": "Lobby"})
    listed = await api.get(V2, params={"limit": 1})
    assert listed.status_code == 200, listed.text
    assert listed.headers["x-total-count"] == "2"
    assert 'rel="next"' in listed.headers["link"] and "offset=1" in listed.headers["link"]
    assert len(listed.json()) == 1
    found = (await api.get(V2, params={"q": "huddle"})).json()
    assert [system["id"] for system in found] == [room.system_id]
    assert (await api.get(V2, params={"module_id": room.first})).json()[0]["id"] == room.system_id

    shown = (await api.get(f"{V2}/{room.system_id}")).json()
    assert shown["name"] == shown["display_name"] == "Huddle"
    assert shown["modules"] == [room.first, room.second]
    assert len(shown["settings"]) == 4
    complete = (await api.get(f"{V2}/{room.system_id}", params={"complete": "true"})).json()
    assert [m["id"] for m in complete["module_data"]] == [room.first, room.second]
    assert complete["module_data"][0]["custom_name"] == "Echo"
    assert (await api.get(f"{V2}/sys-nope")).status_code == 404


async def test_module_and_system_fields_as_placeos_front_ends_read_them(
    api: httpx.AsyncClient, room: Room, node: Node
) -> None:
    """PlaceOS's numbers for the driver's role, Unix seconds for the times, ``connected``
    from the device's status, and no port where none is set (``PlaceModule``)."""
    driver_id = await add_driver(api, "generic/tcp_line.py", "TcpLine", "device")
    display = await add_module(
        api, driver_id, "Display", ip="127.0.0.1", port=free_port(), system_id=room.system_id
    )
    await wait_running(node, display)
    shown = (await api.get(f"{V2}/{room.system_id}", params={"complete": "true"})).json()
    echo, _, device = shown["module_data"]
    assert (echo["role"], device["role"]) == (2, 1)
    assert echo["port"] is None and device["port"] > 0
    assert "connected" not in echo, "a service has no device to be connected to"
    assert device["connected"] is False
    now = time.time()
    for resource in (shown, echo, device):
        assert now - 60 < resource["created_at"] <= resource["updated_at"] <= now + 1


async def test_paging_links_encode_a_space_as_percent_20(api: httpx.AsyncClient) -> None:
    """``decodeURIComponent`` (ts-client) reads %20 as a space, but + as a plus."""
    for index in range(3):
        await create(api, "/api/systems", {"name": f"meeting room {index}"})
    listed = await api.get(V2, params={"q": "meeting room", "limit": 1})
    link = listed.headers["link"]
    assert "q=meeting%20room" in link and "+" not in link, link
    following = link.split(">")[0].lstrip("<")
    page = await api.get(following)
    assert page.status_code == 200, page.text
    first, second = listed.json()[0]["name"], page.json()[0]["name"]
    assert first != second and {first, second} <= {f"meeting room {i}" for i in range(3)}


async def test_module_calls_state_functions_and_counts(api: httpx.AsyncClient, room: Room) -> None:
    system = f"{V2}/{room.system_id}"
    executed = await api.post(f"{system}/Echo_2/set", json=["power", True])
    assert executed.status_code == 200, executed.text
    assert (await api.post(f"{system}/Echo_2/echo", json=[{"a": 1}])).json() == {"a": 1}
    assert (await api.get(f"{system}/Echo_2")).json() == {"power": True}
    assert (await api.get(f"{system}/Echo_2/power")).json() is True
    assert (await api.get(f"{system}/Echo_1/power")).status_code == 404
    assert (await api.get(f"{system}/Echo_3")).status_code == 404
    assert (await api.post(f"{system}/Echo_1/warp", json=[])).status_code == 404
    failed = await api.post(f"{system}/Echo_1/fail", json=["projector on fire"])
    assert failed.status_code == 500 and "projector on fire" in failed.json()["detail"]

    functions = (await api.get(f"{system}/functions/Echo_1")).json()
    assert functions["echo"]["arity"] == 1 and functions["echo"]["order"] == ["value"]
    assert functions["set"]["order"] == ["name", "value"]

    assert (await api.get(f"{system}/count")).json() == {"Echo": 2}
    assert (await api.get(f"{system}/count", params={"module": "Echo"})).json() == {"count": 2}
    assert (await api.get(f"{system}/count", params={"module": "Tv"})).json() == {"count": 0}


async def test_routed_like_native_routes_preferring_proxy(
    api: httpx.AsyncClient, node: Node, room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclass
    class Unreachable:
        async def placement(self, location: str | None) -> Placement:
            return Placement("elsewhere", "edge 'e1'", None, reachable=False, retry_after=3)

    monkeypatch.setattr(node, "placement", Unreachable())
    refused = await api.post(f"{V2}/{room.system_id}/Echo_1/echo", json=[1])
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    assert (await api.get(f"{V2}/{room.system_id}")).status_code == 200, "a config read"
    anonymous = await api.post(
        f"{V2}/{room.system_id}/Echo_1/echo", json=[1], headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


def test_module_positions() -> None:
    assert module_position("Display_2") == ("Display", 2)
    assert module_position("Video_Switcher_1") == ("Video_Switcher", 1)
    assert module_position("Display") == ("Display", 1)
    assert module_position("Display_x") == ("Display_x", 1)


def test_functions_in_placeos_shape() -> None:
    funcs = {
        "send": {
            "params": [
                {"name": "text", "kind": "positional_or_keyword", "annotation": "str"},
                {"name": "wait", "kind": "keyword_only", "default": True},
            ],
            "doc": "Send a line.",
        }
    }
    assert placeos_functions(funcs) == {
        "send": {
            "arity": 2,
            "params": {"text": ["str"], "wait": ["Any", True]},
            "order": ["text", "wait"],
            "doc": "Send a line.",
        }
    }
