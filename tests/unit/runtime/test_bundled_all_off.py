"""The bundled AllOff logic driver, calling the other modules of its system."""

from __future__ import annotations

import pytest

from app.runtime import ModuleManager, SystemSpec
from sim.line_device import LineDevice
from tests.unit.runtime.conftest import Changes, DriverWriter, module_spec, tcp_line_spec

DISPLAY = """
from app.runtime import Driver


class Display(Driver):
    async def power(self, on: bool) -> None:
        self.status["power"] = on
"""


@pytest.fixture
async def room(manager: ModuleManager, write_driver: DriverWriter) -> ModuleManager:
    """Two displays, a switcher that is no display, and the logic, all running."""
    write_driver("display.py", DISPLAY)
    for module_id, name in [("d1", "Display"), ("sw", "Switcher"), ("d2", "Display")]:
        await manager.load(module_spec(module_id, "display.py", "Display", "device", name=name))
    await manager.load(
        module_spec("logic-1", "logic/all_off.py", "AllOff", "logic", system_ids=("sys-1",))
    )
    manager.set_systems([SystemSpec("sys-1", "Boardroom", ("d1", "sw", "d2", "logic-1"))])
    await manager.start_many(["d1", "sw", "d2", "logic-1"])
    return manager


async def test_all_off_switches_off_every_display(room: ModuleManager) -> None:
    for module_id in ("d1", "sw", "d2"):
        await room.exec(module_id, "power", [True])

    switched = await room.exec("logic-1", "all_off")

    assert switched == 2
    assert [room.state(m)["power"] for m in ("d1", "sw", "d2")] == [False, True, False]


async def test_power_count_follows_the_displays(room: ModuleManager) -> None:
    changes = Changes()
    room.handle("logic-1").subscribe_status(changes)

    await room.exec("d1", "power", [True])
    await changes.wait_for("power_count", 1)
    await room.exec("d2", "power", [True])
    await changes.wait_for("power_count", 2)
    await room.exec("logic-1", "all_off")

    assert changes.seen[-1] == ("power_count", 0)
    assert room.state("logic-1") == {"power_count": 0}


async def test_a_display_that_fails_is_not_counted(room: ModuleManager) -> None:
    lines = Changes()
    room.handle("logic-1").subscribe_debug(lines)
    await room.stop("d2")

    assert await room.exec("logic-1", "all_off") == 1
    assert any("Display_2.power failed" in line for _, line in lines.seen)


async def test_stopping_the_logic_drops_its_subscriptions(room: ModuleManager) -> None:
    await room.stop("logic-1")

    await room.exec("d1", "power", [True])

    assert room.state("logic-1") == {"power_count": 0}


async def test_all_off_sends_a_configured_command_to_real_devices(
    manager: ModuleManager,
) -> None:
    devices = [LineDevice(name=f"Display_{n}") for n in (1, 2)]
    for device in devices:
        await device.start()
    try:
        for n, device in enumerate(devices, start=1):
            await manager.load(tcp_line_spec(f"d{n}", device.port))
        await manager.load(
            module_spec(
                "logic-1",
                "logic/all_off.py",
                "AllOff",
                "logic",
                system_ids=("sys-1",),
                settings={"method": "send", "args": ["POWER OFF"]},
            )
        )
        manager.set_systems([SystemSpec("sys-1", "Boardroom", ("d1", "d2", "logic-1"))])
        assert await manager.start_many(["logic-1", "d1", "d2"]) == {}

        assert await manager.exec("logic-1", "all_off") == 2
        assert [device.received for device in devices] == [["POWER OFF"], ["POWER OFF"]]
    finally:
        await manager.stop_all()
        for device in devices:
            await device.stop()
