from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from app.sim.line_device import LineDevice
from tests.unit.sim.conftest import SimulatorLauncher


@pytest.fixture
async def device() -> AsyncIterator[LineDevice]:
    device = LineDevice(name="Display_1")
    await device.start()
    yield device
    await device.stop()


async def connect(device: LineDevice) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", device.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def test_binds_a_free_port_when_asked_for_port_zero(device: LineDevice) -> None:
    assert device.port > 0


async def test_echoes_each_line_by_default(device: LineDevice) -> None:
    reader, writer = await connect(device)

    writer.write(b"power on\r\ninput hdmi\n")

    assert await reader.readline() == b"power on\n"
    assert await reader.readline() == b"input hdmi\n"
    assert device.received == ["power on", "input hdmi"]
    await close(writer)


async def test_answers_with_reply_and_stays_silent_on_none() -> None:
    def reply(line: str) -> str | None:
        return None if line == "quiet" else f"ack {line}"

    device = LineDevice(reply=reply)
    await device.start()
    try:
        reader, writer = await connect(device)
        writer.write(b"quiet\nloud\n")

        assert await reader.readline() == b"ack loud\n"
        assert device.received == ["quiet", "loud"]
        await close(writer)
    finally:
        await device.stop()


async def test_counts_and_records_connections(device: LineDevice) -> None:
    _, first = await connect(device)
    _, second = await connect(device)
    await device.wait_for(lambda: device.active_connections == 2, timeout=5)

    await close(first)
    await close(second)

    await device.wait_for(lambda: device.active_connections == 0, timeout=5)
    assert device.max_concurrent == 2
    assert device.total_connections == 2
    kinds = [kind for _, kind, _ in device.events]
    assert sorted(kinds) == ["close", "close", "open", "open"]
    assert kinds[:2] == ["open", "open"]
    times = [moment for moment, _, _ in device.events]
    assert times == sorted(times)
    local = first.get_extra_info("sockname")
    assert device.events[0][2] == f"{local[0]}:{local[1]}"


async def test_drop_clients_closes_them_and_keeps_listening(device: LineDevice) -> None:
    reader, writer = await connect(device)
    await device.wait_for(lambda: device.active_connections == 1, timeout=5)

    await device.drop_clients()

    assert device.active_connections == 0
    assert await reader.read() == b""
    await close(writer)
    reader, writer = await connect(device)
    writer.write(b"still here\n")
    assert await reader.readline() == b"still here\n"
    await close(writer)


async def test_restarts_on_the_same_port(device: LineDevice) -> None:
    reader, writer = await connect(device)
    port = device.port

    await device.stop()
    assert await reader.read() == b""
    await close(writer)
    with pytest.raises(ConnectionRefusedError):
        await connect(device)
    await device.start()

    assert device.port == port
    reader, writer = await connect(device)
    writer.write(b"back\n")
    assert await reader.readline() == b"back\n"
    await close(writer)


async def test_wait_for_gives_up_after_its_timeout(device: LineDevice) -> None:
    with pytest.raises(TimeoutError):
        await device.wait_for(lambda: False, timeout=0.01)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_runs_as_a_process_until_signalled(
    launch: SimulatorLauncher, stop_signal: signal.Signals
) -> None:
    simulator = await launch("app.sim.line_device", "--port", "0", "--name", "Display_1")

    assert simulator.name == "Display_1"
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    writer.write(b"hello\n")
    assert await reader.readline() == b"hello\n"

    simulator.process.send_signal(stop_signal)
    async with asyncio.timeout(10):
        assert await simulator.process.wait() == 0
    assert await reader.read() == b""
    await close(writer)
