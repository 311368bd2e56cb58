"""Background tasks: none ends unnoticed, none is reported for being stopped."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from app.services.tasks import BackgroundTasks, DeadTask, describe_dead
from tests.support.wait import wait_until


async def failing() -> None:
    await asyncio.sleep(0)
    raise OSError(5, "Input/output error")


async def forever() -> None:
    await asyncio.Event().wait()


async def returning() -> None:
    await asyncio.sleep(0)


async def test_a_task_that_raises_is_dead_logged_with_its_traceback_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counts: list[int] = []
    tasks = BackgroundTasks(on_death=counts.append)
    tasks.spawn(forever(), name="uplink")
    tasks.spawn(failing(), name="replica follow")

    await wait_until(lambda: bool(tasks.dead), timeout=2, message="the death")

    [dead] = tasks.dead
    assert (dead.name, dead.error) == ("replica follow", "OSError: [Errno 5] Input/output error")
    assert counts == [1]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "background task 'replica follow' died"
    assert record.exc_info is not None and record.exc_info[0] is OSError
    await tasks.stop()


async def test_a_task_meant_to_run_until_shutdown_that_returns_is_dead() -> None:
    tasks = BackgroundTasks()
    tasks.spawn(returning(), name="change watch")
    tasks.spawn(returning(), name="edge boot", forever=False)

    await wait_until(lambda: bool(tasks.dead), timeout=2, message="the death")
    await asyncio.sleep(0.01)

    assert [dead.name for dead in tasks.dead] == ["change watch"]
    assert "should run until shutdown" in tasks.dead[0].error


async def test_cancelled_tasks_and_tasks_ending_at_shutdown_are_not_deaths() -> None:
    tasks = BackgroundTasks()
    cancelled = tasks.spawn(forever(), name="failover timer", forever=False)
    cancelled.cancel()
    running = [tasks.spawn(forever(), name=f"task {n}") for n in range(3)]

    await tasks.stop()

    assert all(task.done() for task in [cancelled, *running])
    assert tasks.dead == []


def test_the_readiness_detail_names_every_dead_task() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    one = [DeadTask("edge boot", "JSONDecodeError: Expecting ':'", at)]
    assert describe_dead(one) == (
        "background task died: 'edge boot' (JSONDecodeError: Expecting ':'); "
        "see the log for the traceback"
    )
    two = [*one, DeadTask("uplink", "RuntimeError: boom", at)]
    assert describe_dead(two).startswith("background tasks died: 'edge boot' (")
    assert "; 'uplink' (RuntimeError: boom);" in describe_dead(two)
