from __future__ import annotations

import asyncio

import pytest

from app.runtime import Driver, ModuleContext, Status
from app.runtime.driver import BackgroundTasks, module_logger, overrides
from app.runtime.status import DebugStream
from tests.unit.runtime.conftest import Changes


def _context(**settings: object) -> ModuleContext:
    logger = module_logger("mod-1", DebugStream())
    return ModuleContext(
        id="mod-1",
        name="Display",
        role="device",
        ip="10.0.0.5",
        port=4999,
        uri=None,
        settings=settings,
        status=Status(),
        logger=logger,
        tasks=BackgroundTasks(logger),
    )


class Display(Driver):
    async def on_update(self) -> None:
        pass


def test_a_driver_reads_its_module_through_the_context() -> None:
    driver = Display(_context(volume=30))

    assert (driver.id, driver.name, driver.ip, driver.port, driver.uri) == (
        "mod-1",
        "Display",
        "10.0.0.5",
        4999,
        None,
    )
    assert driver.setting("volume") == 30
    assert driver.setting("input", "hdmi1") == "hdmi1"
    assert driver.system is None


def test_overrides_tells_an_own_hook_from_the_base_one() -> None:
    driver = Display(_context())

    assert overrides(driver, "on_update")
    assert not overrides(driver, "on_start")


async def test_cancel_all_ends_the_tasks_a_driver_spawned() -> None:
    driver = Display(_context())
    task = driver.spawn(asyncio.Event().wait(), name="waiter")

    await driver.context.tasks.cancel_all()

    assert task.cancelled()


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    tasks = BackgroundTasks(module_logger("mod-1", DebugStream()))
    rounds: list[str] = []

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            rounds.append("swallowed")  # as asyncio.wait_for may on Python 3.11
        await asyncio.Event().wait()

    task = tasks.spawn(stubborn())
    await asyncio.sleep(0)

    await tasks.cancel_all()

    assert rounds == ["swallowed"]
    assert task.cancelled()


async def test_a_task_that_ignores_every_cancellation_is_abandoned_with_a_warning() -> None:
    stream, lines = DebugStream(), Changes()
    stream.subscribe(lines)
    tasks = BackgroundTasks(module_logger("mod-1", stream), patience=0.1)
    stop = asyncio.Event()

    async def deaf() -> None:
        while not stop.is_set():
            try:
                await stop.wait()
            except asyncio.CancelledError:
                continue

    task = tasks.spawn(deaf(), name="deaf")
    await asyncio.sleep(0)

    await tasks.cancel_all()

    assert lines.seen == [("warning", "abandoned tasks that ignore cancellation: deaf")]
    stop.set()
    await task


@pytest.mark.parametrize("error", [RuntimeError("poll failed"), ValueError("bad frame")])
async def test_a_failing_task_is_logged(error: Exception) -> None:
    stream, lines = DebugStream(), Changes()
    stream.subscribe(lines)
    tasks = BackgroundTasks(module_logger("mod-1", stream))

    async def fail() -> None:
        raise error

    task = tasks.spawn(fail(), name="poller")
    await asyncio.wait([task])

    assert lines.seen[0][0] == "error"
    assert lines.seen[0][1].startswith("task poller failed\nTraceback")
    assert lines.seen[0][1].endswith(f"{type(error).__name__}: {error}")
