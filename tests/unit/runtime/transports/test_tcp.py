from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from app.runtime.transports import NotConnected, TcpClient
from app.sim.line_device import LineDevice
from tests.support.wait import wait_until
from tests.unit.runtime.transports.conftest import ClientFactory


class Recorder:
    """Collects what a client hands to its callbacks."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.transitions: list[bool] = []

    def on_data(self, data: bytes) -> None:
        self.data += data

    def on_connection(self, up: bool) -> None:
        self.transitions.append(up)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(device: LineDevice, make_client: ClientFactory, recorder: Recorder) -> TcpClient:
    client = make_client(
        device.port, on_data=recorder.on_data, on_connection=recorder.on_connection
    )
    await client.start()
    await client.wait_connected(timeout=5)
    return client


def client_tasks() -> set[asyncio.Task[object]]:
    return {
        task
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__.startswith(TcpClient.__name__)  # type: ignore[union-attr]
    }


async def test_connects_and_exchanges_data(
    client: TcpClient, device: LineDevice, recorder: Recorder
) -> None:
    await client.write(b"power on\n")

    await wait_until(lambda: recorder.data == b"power on\n", timeout=5, message="the echo")
    assert client.connected
    assert recorder.transitions == [True]
    assert device.received == ["power on"]


async def test_start_returns_before_connecting(
    device: LineDevice, make_client: ClientFactory
) -> None:
    client = make_client(device.port)

    await client.start()

    assert not client.connected
    await client.wait_connected(timeout=5)
    assert client.connected


async def test_reconnects_after_the_device_drops_its_clients(
    client: TcpClient, device: LineDevice, recorder: Recorder
) -> None:
    await device.drop_clients()

    await wait_until(lambda: recorder.transitions == [True, False, True], timeout=5)
    await client.write(b"again\n")
    await wait_until(lambda: recorder.data == b"again\n", timeout=5, message="the echo")
    assert device.total_connections == 2
    assert device.max_concurrent == 1


async def test_reconnects_when_a_stopped_device_comes_back_on_its_port(
    client: TcpClient, device: LineDevice, recorder: Recorder
) -> None:
    await device.stop()
    await wait_until(lambda: not client.connected, timeout=5, message="the disconnect")

    await device.start()

    await client.wait_connected(timeout=5)
    assert recorder.transitions == [True, False, True]


async def test_keeps_trying_until_the_device_comes_up(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    device = LineDevice()
    await device.start()
    await device.stop()  # keeps its port, now refusing connections
    client = make_client(device.port)
    await client.start()
    await wait_until(lambda: "cannot connect" in caplog.text, timeout=5, message="a refusal")

    await device.start()
    try:
        await client.wait_connected(timeout=5)
    finally:
        await device.stop()


async def test_stop_closes_the_connection_and_leaks_no_task(
    client: TcpClient, device: LineDevice, recorder: Recorder
) -> None:
    assert client_tasks()

    await client.stop()

    assert not client.connected
    assert recorder.transitions == [True, False]
    assert client_tasks() == set()
    await device.wait_for(lambda: device.active_connections == 0, timeout=5)
    assert [kind for _, kind, _ in device.events] == ["open", "close"]


async def test_the_device_has_seen_the_close_when_stop_returns(
    make_client: ClientFactory,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        client = make_client(listener.getsockname()[1])
        await client.start()
        await client.wait_connected(timeout=5)
        device_side, _ = listener.accept()  # already queued by the kernel: returns at once
        with device_side:
            await client.stop()

            assert device_side.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""


async def test_stop_while_the_device_is_unreachable(make_client: ClientFactory) -> None:
    device = LineDevice()
    await device.start()
    await device.stop()
    client = make_client(device.port)
    await client.start()

    await client.stop()

    assert client_tasks() == set()


async def test_stop_is_harmless_before_start_and_twice(make_client: ClientFactory) -> None:
    client = make_client(1)

    await client.stop()
    await client.start()
    await client.stop()
    await client.stop()

    assert client_tasks() == set()


async def test_can_start_again_after_stop(
    client: TcpClient, device: LineDevice, recorder: Recorder
) -> None:
    await client.stop()

    await client.start()

    await client.wait_connected(timeout=5)
    assert recorder.transitions == [True, False, True]
    assert device.total_connections == 2


async def test_write_while_down_raises_not_connected(client: TcpClient, device: LineDevice) -> None:
    await device.stop()
    await wait_until(lambda: not client.connected, timeout=5, message="the disconnect")

    with pytest.raises(NotConnected):
        await client.write(b"lost\n")


async def test_write_before_start_raises_not_connected(make_client: ClientFactory) -> None:
    with pytest.raises(NotConnected):
        await make_client(1).write(b"x")


async def test_raising_callbacks_do_not_break_the_connection(
    device: LineDevice, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    chunks: list[bytes] = []

    def on_data(data: bytes) -> None:
        chunks.append(data)
        raise RuntimeError("driver bug in on_data")

    def on_connection(up: bool) -> None:
        raise RuntimeError("driver bug in on_connection")

    client = make_client(device.port, on_data=on_data, on_connection=on_connection)
    await client.start()
    await client.wait_connected(timeout=5)

    await client.write(b"one\n")
    await wait_until(lambda: len(chunks) == 1, timeout=5, message="the first echo")
    await client.write(b"two\n")
    await wait_until(lambda: len(chunks) == 2, timeout=5, message="the second echo")

    assert client.connected
    assert device.total_connections == 1
    assert "driver bug in on_data" in caplog.text
    assert "driver bug in on_connection" in caplog.text


async def test_connects_over_tls(make_client: ClientFactory) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    device = LineDevice(tls=server_context)
    await device.start()
    received = bytearray()
    client = make_client(device.port, on_data=received.extend, tls=client_context)
    try:
        await client.start()
        await client.wait_connected(timeout=5)
        await client.write(b"secure\n")
        await wait_until(lambda: received == b"secure\n", timeout=5, message="the echo")
    finally:
        await device.stop()


async def test_does_not_connect_to_an_untrusted_tls_device(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)
    device = LineDevice(tls=server_context)
    await device.start()
    client = make_client(device.port, tls=ssl.create_default_context())
    try:
        await client.start()
        await wait_until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, timeout=5, message="a rejection"
        )
    finally:
        await device.stop()

    assert not client.connected
    assert device.total_connections == 0
