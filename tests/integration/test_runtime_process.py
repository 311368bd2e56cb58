"""A real master process running a TcpLine module against a line device, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.node_process import NodeProcess
from app.sim.line_device import LineDevice
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def device() -> AsyncIterator[LineDevice]:
    line_device = LineDevice(reply=lambda line: f"ack {line}")
    await line_device.start()
    yield line_device
    await line_device.stop()


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_module_runs_its_device_and_reloads_live(
    client: httpx.AsyncClient, device: LineDevice, master: NodeProcess
) -> None:
    driver = await created(
        client,
        "/api/drivers",
        {"name": "TCP line", "file": "generic/tcp_line.py", "class_name": "TcpLine"},
    )
    system = await created(client, "/api/systems", {"name": "Room 1"})
    module = await created(
        client,
        "/api/modules",
        {
            "driver_id": driver,
            "name": "Device",
            "ip": "127.0.0.1",
            "port": device.port,
            "system_id": system,
        },
    )
    state_path = f"/api/systems/{system}/state"

    async def connected() -> bool:
        master.check_alive()
        response = await client.get(state_path)
        state = response.json() if response.status_code == 200 else {}
        return state.get("Device_1", {}).get("connected") is True

    await wait_until(connected, timeout=15, message="the module to connect to its device")

    exec_path = f"/api/systems/{system}/exec"
    call = {"module": "Device", "method": "send", "args": ["hello"]}
    reply = await client.post(exec_path, json=call)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"result": "ack hello"}
    assert device.received == ["hello"]

    funcs = (await client.get(f"/api/systems/{system}/funcs?module=Device")).json()
    assert [param["name"] for param in funcs["send"]["params"]] == ["text"]

    # Stopping the module closes its connection to the device; starting reopens it.
    assert (await client.post(f"/api/modules/{module}/stop")).json()["running"] is False
    await device.wait_for(lambda: device.active_connections == 0, timeout=5)
    assert (await client.get(state_path)).json()["Device_1"]["connected"] is False
    assert (await client.post(f"/api/modules/{module}/start")).json()["running"] is True
    await wait_until(connected, timeout=10, message="the module to reconnect")

    # An inline edit changes the running module's behaviour, without a restart.
    source = (master.workdir / "drivers" / "generic" / "tcp_line.py").read_text()
    shouting = source.replace("return reply\n", "return reply.upper()\n")
    assert shouting != source
    reload_path = f"/api/drivers/{driver}/reload"
    reloaded = await client.post(reload_path, json={"files": {"generic/tcp_line.py": shouting}})
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["modules"] == [module]
    await wait_until(connected, timeout=10, message="the reloaded module to reconnect")
    assert (await client.post(exec_path, json=call)).json() == {"result": "ACK HELLO"}

    # A broken edit is refused with the import error; the old code keeps running.
    broken = await client.post(
        reload_path, json={"files": {"generic/tcp_line.py": "import no_such_module\n"}}
    )
    assert broken.status_code == 422
    assert broken.headers["content-type"].startswith("application/problem+json")
    problem = broken.json()
    assert "ModuleNotFoundError" in problem["detail"] and "no_such_module" in problem["detail"]
    assert (await client.post(exec_path, json=call)).json() == {"result": "ACK HELLO"}
    master.check_alive()
