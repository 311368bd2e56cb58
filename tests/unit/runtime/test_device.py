"""DeviceDriver, through the bundled TcpLine driver, against a device on loopback."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import DriverFailed
from app.runtime import ModuleManager
from app.sim.line_device import LineDevice
from tests.unit.runtime.conftest import Changes, DriverWriter, module_spec, tcp_line_spec


@pytest.fixture
async def display(manager: ModuleManager, line_device: LineDevice) -> str:
    await manager.load(tcp_line_spec("display-1", line_device.port))
    await manager.start("display-1")
    return "display-1"


async def test_send_writes_a_line_and_returns_the_reply(
    manager: ModuleManager, line_device: LineDevice, display: str
) -> None:
    reply = await manager.exec(display, "send", ["power on"])

    assert reply == "ack power on"
    assert line_device.received == ["power on"]
    assert manager.state(display) == {"connected": True, "last_reply": "ack power on"}


async def test_replies_pair_with_their_requests_under_concurrency(
    manager: ModuleManager, display: str
) -> None:
    replies = await asyncio.gather(*(manager.exec(display, "send", [f"n{i}"]) for i in range(20)))

    assert replies == [f"ack n{i}" for i in range(20)]


async def test_connected_follows_the_device_going_and_coming_back(
    manager: ModuleManager, line_device: LineDevice, display: str
) -> None:
    changes = Changes()
    manager.handle(display).subscribe_status(changes)
    await changes.wait_until(lambda: manager.state(display)["connected"] is True)
    changes.seen.clear()

    await line_device.stop()
    await changes.wait_for("connected", False)
    await line_device.start()
    await changes.wait_for("connected", True)

    assert changes.seen == [("connected", False), ("connected", True)]
    assert await manager.exec(display, "send", ["back"]) == "ack back"


async def test_a_dropped_connection_is_reopened(
    manager: ModuleManager, line_device: LineDevice, display: str
) -> None:
    await line_device.wait_for(lambda: line_device.active_connections == 1, timeout=5)

    await line_device.drop_clients()

    await line_device.wait_for(lambda: line_device.total_connections == 2, timeout=5)
    assert await manager.exec(display, "send", ["again"]) == "ack again"
    assert line_device.max_concurrent == 1


async def test_stopping_the_module_closes_the_device_connection(
    manager: ModuleManager, line_device: LineDevice, display: str
) -> None:
    await line_device.wait_for(lambda: line_device.active_connections == 1, timeout=5)

    await manager.stop(display)

    await line_device.wait_for(lambda: line_device.active_connections == 0, timeout=5)
    assert manager.state(display)["connected"] is False


async def test_a_command_sent_while_connecting_waits_for_the_connection(
    manager: ModuleManager, line_device: LineDevice
) -> None:
    await manager.load(tcp_line_spec("display-1", line_device.port))
    await manager.start("display-1")

    assert await manager.exec("display-1", "send", ["early"]) == "ack early"


async def test_a_device_that_never_answers_fails_the_command(
    manager: ModuleManager, line_device: LineDevice
) -> None:
    silent = LineDevice(reply=lambda _line: None)
    await silent.start()
    try:
        await manager.load(tcp_line_spec("display-1", silent.port, request_timeout=0.1))
        await manager.start("display-1")

        with pytest.raises(DriverFailed, match=r"no reply within 0\.1 s"):
            await manager.exec("display-1", "send", ["hello?"])
    finally:
        await manager.stop("display-1")
        await silent.stop()


async def test_an_unreachable_device_fails_the_command_after_the_request_timeout(
    manager: ModuleManager, line_device: LineDevice
) -> None:
    port = line_device.port
    await line_device.stop()
    await manager.load(tcp_line_spec("display-1", port, request_timeout=0.1))
    await manager.start("display-1")

    with pytest.raises(DriverFailed, match=f"cannot connect to 127.0.0.1:{port}"):
        await manager.exec("display-1", "send", ["anyone?"])


async def test_a_device_module_without_an_address_does_not_start(manager: ModuleManager) -> None:
    await manager.load(module_spec("display-1", "generic/tcp_line.py", "TcpLine", "device"))

    with pytest.raises(DriverFailed, match="TcpLine needs the module's ip and port"):
        await manager.start("display-1")


async def test_funcs_lists_send_with_its_parameter(manager: ModuleManager, display: str) -> None:
    funcs = manager.funcs(display)

    assert list(funcs) == ["send"]
    assert funcs["send"]["params"] == [
        {"name": "text", "kind": "positional_or_keyword", "annotation": "str"}
    ]


async def test_frames_the_device_sends_unasked_reach_on_frame(
    manager: ModuleManager, line_device: LineDevice, write_driver: DriverWriter
) -> None:
    write_driver(
        "chatty.py",
        """
        from app.runtime import DeviceDriver

        class Chatty(DeviceDriver):
            def on_frame(self, frame: bytes) -> None:
                self.status["heard"] = frame.decode()

            async def notify(self, text: str) -> None:
                await self.send_bytes(text.encode() + b"\\n")
        """,
    )
    await manager.load(
        module_spec(
            "chatty-1", "chatty.py", "Chatty", "device", ip="127.0.0.1", port=line_device.port
        )
    )
    await manager.start("chatty-1")
    changes = Changes()
    manager.handle("chatty-1").subscribe_status(changes)

    await manager.exec("chatty-1", "notify", ["volume 3"])

    await changes.wait_for("heard", "ack volume 3")
