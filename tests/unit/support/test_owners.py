from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from app.sim.line_device import LineDevice
from tests.support.owners import DeviceWatch, connection_owner


@pytest.fixture
async def device() -> AsyncIterator[LineDevice]:
    device = LineDevice(name="display")
    await device.start()
    yield device
    await device.stop()


def me() -> dict[str, int]:
    return {"other": 1, "me": os.getpid()}


async def test_names_the_process_holding_a_connection(device: LineDevice) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", device.port)
    client_port = writer.get_extra_info("sockname")[1]

    assert connection_owner(client_port, device.port, me()) == "me"
    assert connection_owner(client_port, device.port, {"other": 1}) is None
    writer.close()


async def test_follows_who_opens_and_closes_connections(device: LineDevice) -> None:
    async with DeviceWatch(device, me) as watch:
        _, first = await asyncio.open_connection("127.0.0.1", device.port)
        await watch.wait_held_by("me", timeout=2)
        _, second = await asyncio.open_connection("127.0.0.1", device.port)
        await device.wait_for(lambda: device.active_connections == 2, timeout=2)
        first.close()
        await device.wait_for(lambda: device.active_connections == 1, timeout=2)
        second.close()
        await watch.wait_released(timeout=2)

    assert watch.owners() == ["me", "me"]
    assert all(not connection.open for connection in watch.connections)
    assert 0 < watch.overlap_s() < 2
