"""Control systems over REST: modules by name and index, against real line devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.node import Node
from app.services.routing import Placement
from app.sim.line_device import LineDevice
from tests.support.wait import wait_until
from tests.unit.routers.test_crud import assert_problem, create
from tests.unit.routers.test_module_ops import add_driver, add_module

#: Reconnect quickly after a device comes back.
FAST_RECONNECT = {"reconnect_delay": 0.05, "reconnect_max": 0.2}


@dataclass(frozen=True)
class Room:
    system_id: str
    first: str  # Device_1
    second: str  # Device_2


@pytest.fixture
async def devices() -> AsyncIterator[tuple[LineDevice, LineDevice]]:
    first = LineDevice(name="display")
    second = LineDevice(name="switcher", reply=str.upper)
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


async def system_state(api: httpx.AsyncClient, system_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/systems/{system_id}/state")
    return dict(response.json()) if response.status_code == 200 else {}


async def wait_connected(api: httpx.AsyncClient, system_id: str, key: str, up: bool) -> None:
    async def reached() -> bool:
        return (await system_state(api, system_id)).get(key, {}).get("connected") is up

    await wait_until(reached, timeout=10, message=f"{key} connected={up}")


@pytest.fixture
async def room(api: httpx.AsyncClient, devices: tuple[LineDevice, LineDevice]) -> Room:
    """Two TcpLine modules called ``Device`` in one system, connected to their devices."""
    driver_id = await add_driver(api, "generic/tcp_line.py", "TcpLine", "device")
    system = await create(api, "/api/systems", {"name": "Boardroom"})
    ids = [
        await add_module(
            api,
            driver_id,
            "Device",
            ip="127.0.0.1",
            port=device.port,
            settings=FAST_RECONNECT,
            system_id=system["id"],
        )
        for device in devices
    ]
    for key in ("Device_1", "Device_2"):
        await wait_connected(api, system["id"], key, True)
    return Room(str(system["id"]), *ids)


async def exec_(api: httpx.AsyncClient, system_id: str, **body: Any) -> httpx.Response:
    return await api.post(f"/api/systems/{system_id}/exec", json=body)


async def test_exec_reaches_the_device_by_name_and_index(
    api: httpx.AsyncClient, room: Room, devices: tuple[LineDevice, LineDevice]
) -> None:
    first = await exec_(api, room.system_id, module="Device", method="send", args=["hello"])
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "hello"}
    second = await exec_(
        api, room.system_id, module="Device", index=2, method="send", kwargs={"text": "hello"}
    )
    assert second.json() == {"result": "HELLO"}
    assert devices[0].received == ["hello"] and devices[1].received == ["hello"]


async def test_state_of_every_module_with_etag(api: httpx.AsyncClient, room: Room) -> None:
    await exec_(api, room.system_id, module="Device", method="send", args=["ping"])
    response = await api.get(f"/api/systems/{room.system_id}/state")
    assert response.json() == {
        "Device_1": {"connected": True, "last_reply": "ping"},
        "Device_2": {"connected": True},
    }
    assert response.headers["cache-control"] == "no-cache"
    again = await api.get(
        f"/api/systems/{room.system_id}/state", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304


async def test_funcs_lists_methods_with_parameters(api: httpx.AsyncClient, room: Room) -> None:
    response = await api.get(f"/api/systems/{room.system_id}/funcs?module=Device&index=2")
    assert response.status_code == 200
    send = response.json()["send"]
    assert send["params"] == [
        {"name": "text", "kind": "positional_or_keyword", "annotation": "str"}
    ]
    assert send["returns"] == "str"
    assert "newline" in send["doc"]
    assert "etag" in response.headers


async def test_stop_and_start_a_system(
    api: httpx.AsyncClient, node: Node, room: Room, devices: tuple[LineDevice, LineDevice]
) -> None:
    stopped = await api.post(f"/api/systems/{room.system_id}/stop")
    assert stopped.status_code == 204
    await wait_until(
        lambda: all(device.active_connections == 0 for device in devices),
        timeout=5,
        message="both device connections to close",
    )
    state = await system_state(api, room.system_id)
    assert state["Device_1"]["connected"] is False and state["Device_2"]["connected"] is False
    refused = await exec_(api, room.system_id, module="Device", method="send", args=["x"])
    assert_problem(refused, 409)

    started = await api.post(f"/api/systems/{room.system_id}/start")
    assert started.status_code == 200
    assert started.json() == {"failed": {}}
    await wait_connected(api, room.system_id, "Device_2", True)
    assert (
        await exec_(api, room.system_id, module="Device", index=2, method="send", args=["x"])
    ).json() == {"result": "X"}


async def test_stopping_a_module_closes_its_device_connection(
    api: httpx.AsyncClient, room: Room, devices: tuple[LineDevice, LineDevice]
) -> None:
    display, switcher = devices
    assert (await api.post(f"/api/modules/{room.first}/stop")).status_code == 200
    await wait_until(lambda: display.active_connections == 0, timeout=5, message="a close")
    assert switcher.active_connections == 1
    assert (await api.post(f"/api/modules/{room.first}/start")).status_code == 200
    await wait_connected(api, room.system_id, "Device_1", True)
    assert display.active_connections == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"module": "Projector", "method": "send", "args": ["x"]}, 404, "Projector_1"),
        ({"module": "Device", "index": 3, "method": "send", "args": ["x"]}, 404, "Device_3"),
        ({"module": "Device", "method": "power", "args": [True]}, 404, "'power'"),
        ({"module": "Device", "method": "send"}, 422, "text"),
        ({"module": "Device", "index": "1", "method": "send", "args": ["x"]}, 422, "index"),
        ({"module": "Device", "index": 0, "method": "send", "args": ["x"]}, 422, "index"),
        ({"method": "send", "args": ["x"]}, 422, "module"),
    ],
)
async def test_exec_errors(
    api: httpx.AsyncClient, room: Room, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await exec_(api, room.system_id, **body)
    assert_problem(response, status)
    assert detail in response.json()["detail"]


async def test_unknown_system_is_404_everywhere(api: httpx.AsyncClient, room: Room) -> None:
    unknown = "/api/systems/sys-nope"
    for response in (
        await api.get(f"{unknown}/state"),
        await api.get(f"{unknown}/funcs?module=Device"),
        await exec_(api, "sys-nope", module="Device", method="send", args=["x"]),
        await api.post(f"{unknown}/start"),
        await api.post(f"{unknown}/stop"),
    ):
        assert_problem(response, 404)
        assert "sys-nope" in response.json()["detail"]
    assert_problem(await api.get(f"/api/systems/{room.system_id}/funcs"), 422, field="module")


class OverTheLink:
    """Placement as for an edge without a public URL: the master answers such requests."""

    async def placement(self, location: str | None) -> Placement:
        return Placement("elsewhere", f"edge {location!r}", via_link=True)


async def test_starting_a_system_another_server_controls_is_409(
    api: httpx.AsyncClient, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await create(api, "/api/edges", {"name": "Hobart", "failover": False})
    system = await create(api, "/api/systems", {"name": "Far", "edge_control_id": edge["id"]})
    monkeypatch.setattr(node, "placement", OverTheLink())
    for operation in ("start", "stop"):
        response = await api.post(f"/api/systems/{system['id']}/{operation}")
        assert_problem(response, 409)
        assert f"controlled by edge {edge['id']}" in response.json()["detail"]
