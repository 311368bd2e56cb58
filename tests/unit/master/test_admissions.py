"""Feed reads wait for a pause in admissions, never longer than the hold."""

from __future__ import annotations

import asyncio

from app.master.admissions import AdmissionGate


async def test_a_feed_read_waits_until_the_admissions_are_over() -> None:
    gate = AdmissionGate(max_hold_s=5)
    await gate.quiet()  # nothing under way: at once
    release = asyncio.Event()

    async def admission() -> None:
        async with gate.admitting():
            await release.wait()

    admissions = [asyncio.create_task(admission()) for _ in range(2)]
    await asyncio.sleep(0)
    reader = asyncio.create_task(gate.quiet())
    await asyncio.sleep(0.01)
    assert not reader.done()
    release.set()
    await asyncio.wait_for(reader, timeout=1)
    await asyncio.gather(*admissions)


async def test_a_feed_read_is_never_held_longer_than_the_hold() -> None:
    gate = AdmissionGate(max_hold_s=0.05)
    forever = asyncio.Event()

    async def admission() -> None:
        async with gate.admitting():
            await forever.wait()

    stuck = asyncio.create_task(admission())
    await asyncio.sleep(0)
    await asyncio.wait_for(gate.quiet(), timeout=1)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    await gate.quiet()  # the cancelled admission counts no more
