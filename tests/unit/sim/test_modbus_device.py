from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from app.sim.modbus_device import ModbusDevice
from tests.unit.sim.conftest import SimulatorLauncher


@pytest.fixture
async def device() -> AsyncIterator[ModbusDevice]:
    device = ModbusDevice(coils=32, registers=16)
    await device.start()
    yield device
    await device.stop()


@pytest.fixture
async def client(device: ModbusDevice) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=device.port, retries=0)
    assert await client.connect()
    yield client
    client.close()


async def test_a_client_reads_what_the_test_wrote(
    device: ModbusDevice, client: AsyncModbusTcpClient
) -> None:
    await device.write_coils(3, [True, False, True])
    await device.write_registers(10, [1234, 65535])

    coils = await client.read_coils(0, count=8, device_id=1)
    registers = await client.read_holding_registers(10, count=2, device_id=1)

    assert coils.bits[:8] == [False, False, False, True, False, True, False, False]
    assert registers.registers == [1234, 65535]


async def test_the_test_reads_what_a_client_wrote(
    device: ModbusDevice, client: AsyncModbusTcpClient
) -> None:
    await client.write_coil(31, True, device_id=1)
    await client.write_registers(0, [7, 8, 9], device_id=1)

    assert await device.read_coils(30, 2) == [False, True]
    assert await device.read_registers(0, 4) == [7, 8, 9, 0]


async def test_answers_any_unit_id(device: ModbusDevice, client: AsyncModbusTcpClient) -> None:
    await device.write_registers(0, [42])

    for unit in (1, 17, 247):
        response = await client.read_holding_registers(0, count=1, device_id=unit)
        assert response.registers == [42]


async def test_addresses_beyond_its_memory_are_refused(
    device: ModbusDevice, client: AsyncModbusTcpClient
) -> None:
    response = await client.read_holding_registers(15, count=2, device_id=1)

    assert response.isError()
    with pytest.raises(IndexError):
        await device.read_registers(15, 2)
    with pytest.raises(IndexError):
        await device.write_coils(-1, [True])


async def test_helpers_need_a_running_device() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        await ModbusDevice().read_coils(0)


async def test_restarts_cleared_on_the_same_port(device: ModbusDevice) -> None:
    await device.write_registers(0, [5])
    port = device.port

    await device.stop()
    await device.start()

    assert device.port == port
    assert await device.read_registers(0) == [0]
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0)
    assert await client.connect()
    assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [0]
    client.close()


def test_rejects_an_empty_memory() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ModbusDevice(coils=0)


async def test_runs_as_a_process_until_signalled(launch: SimulatorLauncher) -> None:
    simulator = await launch("app.sim.modbus_device", "--port", "0", "--name", "Lighting_1")
    assert simulator.name == "Lighting_1"
    client = AsyncModbusTcpClient("127.0.0.1", port=simulator.port, retries=0)
    assert await client.connect()

    await client.write_register(2, 99, device_id=1)
    assert (await client.read_holding_registers(2, count=1, device_id=1)).registers == [99]
    client.close()

    simulator.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await simulator.process.wait() == 0
