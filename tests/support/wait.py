"""Waiting on conditions instead of sleeping for fixed times."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> float:
    """Poll ``condition`` until true; return the seconds it took.

    Raises ``TimeoutError`` naming ``message`` when ``timeout`` seconds pass first.
    The tests and the benchmarks both wait with it.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        await asyncio.sleep(interval)
