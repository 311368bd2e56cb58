from __future__ import annotations

import asyncio

from app.runtime.deadlines import Deadlines
from tests.support.wait import wait_until


async def test_items_are_due_in_deadline_order_across_timeouts() -> None:
    due: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadlines: Deadlines[str] = Deadlines(lambda item: due.append((item, loop.time())))

    deadlines.add("slow", 0.15)
    deadlines.add("fast", 0.05)
    deadlines.add("slow too", 0.15)
    deadlines.add("middle", 0.1)
    await wait_until(lambda: len(due) == 4, timeout=5)

    assert [item for item, _ in due] == ["fast", "middle", "slow", "slow too"]
    for (item, at), timeout in zip(due, (0.05, 0.1, 0.15, 0.15), strict=True):
        assert at - started >= timeout - 0.002, item
    assert len(deadlines) == 0


async def test_a_removed_item_is_never_due_and_the_others_still_are() -> None:
    due: list[str] = []
    deadlines: Deadlines[str] = Deadlines(due.append)

    deadlines.add("answered", 0.02)
    deadlines.add("late", 0.04)
    deadlines.remove("answered", 0.02)
    deadlines.remove("never added", 0.02)
    # "answered" was due before "late": had it fired, ``due`` would never equal this.
    await wait_until(lambda: due == ["late"], timeout=5)

    assert len(deadlines) == 0


async def test_an_earlier_deadline_added_later_moves_the_timer_forward() -> None:
    due: list[str] = []
    deadlines: Deadlines[str] = Deadlines(due.append)

    deadlines.add("in an hour", 3600)
    deadlines.add("soon", 0.02)
    await wait_until(lambda: due == ["soon"], timeout=5)

    assert len(deadlines) == 1
    deadlines.remove("in an hour", 3600)


def test_deadlines_outlive_an_event_loop() -> None:
    due: list[str] = []
    deadlines: Deadlines[str] = Deadlines(due.append)

    async def add_and_leave() -> None:
        deadlines.add("left behind", 0.01)  # its loop closes before the timer fires

    async def add_and_wait() -> None:
        deadlines.add("on time", 0.05)
        await wait_until(lambda: due == ["on time"], timeout=5)

    asyncio.run(add_and_leave())
    asyncio.run(add_and_wait())
