"""The bundled ModbusTcp driver against a pymodbus device on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.errors import DriverFailed
from app.runtime import ModuleManager
from app.sim.modbus_device import ModbusDevice
from tests.unit.runtime.conftest import FAST_RECONNECT, Changes, module_spec

POLL = [
    {"kind": "coil", "address": 0, "count": 1, "name": "lights"},
    {"kind": "register", "address": 4, "count": 2, "name": "setpoints"},
]


@pytest.fixture
async def device() -> AsyncIterator[ModbusDevice]:
    device = ModbusDevice(coils=16, registers=16)
    await device.start()
    yield device
    await device.stop()


async def _start(manager: ModuleManager, port: int, **settings: Any) -> Changes:
    await manager.load(
        module_spec(
            "plc-1",
            "modbus/modbus_tcp.py",
            "ModbusTcp",
            "device",
            ip="127.0.0.1",
            port=port,
            settings={**FAST_RECONNECT, "timeout": 1.0, **settings},
        )
    )
    changes = Changes()
    manager.handle("plc-1").subscribe_status(changes)
    await manager.start("plc-1")
    await changes.wait_for("connected", True)
    return changes


async def test_coils_and_registers_are_read_and_written(
    manager: ModuleManager, device: ModbusDevice
) -> None:
    await _start(manager, device.port)
    await device.write_registers(2, [7, 8])

    await manager.exec("plc-1", "write_coil", [3, True])
    await manager.exec("plc-1", "write_register", [10], {"value": 1234})

    assert await device.read_coils(3) == [True]
    assert await device.read_registers(10) == [1234]
    assert await manager.exec("plc-1", "read_coils", [2, 3]) == [False, True, False]
    assert await manager.exec("plc-1", "read_holding_registers", [2, 2]) == [7, 8]


async def test_polled_values_become_status(manager: ModuleManager, device: ModbusDevice) -> None:
    await device.write_registers(4, [210, 225])
    changes = await _start(manager, device.port, poll=POLL, poll_interval=0.02)
    await changes.wait_for("setpoints", [210, 225])

    await device.write_coils(0, [True])

    await changes.wait_for("lights", True)
    assert manager.state("plc-1")["lights"] is True


async def test_a_write_polls_at_once(manager: ModuleManager, device: ModbusDevice) -> None:
    changes = await _start(manager, device.port, poll=POLL, poll_interval=60)
    await changes.wait_for("lights", False)

    await manager.exec("plc-1", "write_coil", [0, True])

    await changes.wait_for("lights", True, timeout=2)


async def test_connected_follows_the_device(manager: ModuleManager, device: ModbusDevice) -> None:
    changes = await _start(manager, device.port, poll_interval=0.02)

    changes.seen.clear()  # the False reported at start is not the drop
    await device.stop()
    await changes.wait_for("connected", False)
    with pytest.raises(DriverFailed, match="not connected"):
        await manager.exec("plc-1", "read_coils", [0])
    changes.seen.clear()
    await device.start()

    await changes.wait_for("connected", True)
    assert await manager.exec("plc-1", "read_coils", [0]) == [False]


async def test_a_request_fails_as_soon_as_the_device_drops_the_connection(
    manager: ModuleManager,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # a request arrives: no answer, the connection closes
        writer.close()

    device = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        # No answer within a minute would be the request's timeout; the manager's own
        # deadline (2 s) would answer GatewayTimeout, not DriverFailed.
        await _start(manager, device.sockets[0].getsockname()[1], timeout=60.0)
        with pytest.raises(DriverFailed, match="dropped"):
            await manager.exec("plc-1", "read_coils", [0])
        await manager.stop("plc-1")
    finally:
        device.close()


async def test_an_address_outside_the_device_is_a_driver_failure(
    manager: ModuleManager, device: ModbusDevice
) -> None:
    await _start(manager, device.port)

    with pytest.raises(DriverFailed, match="refused"):
        await manager.exec("plc-1", "read_holding_registers", [15, 5])


async def test_stopping_the_module_disconnects(
    manager: ModuleManager, device: ModbusDevice
) -> None:
    changes = await _start(manager, device.port)

    await manager.stop("plc-1")

    assert changes.seen[-1] == ("connected", False)
    assert not manager.is_running("plc-1")
