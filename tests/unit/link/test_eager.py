"""Running a coroutine in the current task until it first waits."""

from __future__ import annotations

import asyncio

import pytest

from app.link import eager

WAIT = 2.0


async def test_a_coroutine_that_never_waits_is_done_at_once() -> None:
    done: list[str] = []

    async def at_once() -> None:
        done.append("answered")

    assert eager.start(at_once()) is None
    assert done == ["answered"]


async def test_one_that_waits_runs_in_this_task_until_then_and_is_finished_by_awaiting() -> None:
    gate = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def waits() -> None:
        seen.append(asyncio.current_task())
        seen.append(await gate)
        seen.append(asyncio.current_task())

    async def drive() -> None:
        rest = eager.start(waits())
        assert rest is not None
        assert seen == [asyncio.current_task()]  # ran up to its wait, here
        await rest

    driver = asyncio.create_task(drive())
    await asyncio.sleep(0)
    gate.set_result("value")
    await asyncio.wait_for(driver, WAIT)
    assert seen == [driver, "value", driver]


async def test_a_cancellation_of_the_awaiting_task_reaches_the_coroutine() -> None:
    cleaned: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("cleaned up")

    async def drive() -> None:
        rest = eager.start(hangs())
        assert rest is not None
        await rest

    driver = asyncio.create_task(drive())
    await asyncio.sleep(0)
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(driver, WAIT)
    assert cleaned == ["cleaned up"]


async def test_what_it_raises_before_waiting_propagates() -> None:
    async def fails() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        eager.start(fails())
