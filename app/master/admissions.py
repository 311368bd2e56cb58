"""Admissions go before the replica feed: negotiation first, copying after.

After a master restart every edge reconnects at once. Each admission records a
decision, which moves the store on, so every catch-up asked meanwhile is a fresh read
of the feed that no other edge can share; and those reads queue on the same store as
the admissions. Holding the feed's reads while admissions are under way lets every
location be negotiated first, and the catch-ups after it read the feed once for all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: The longest a feed read waits for admissions to pause: catch-up is never starved.
MAX_HOLD_S = 2.0


class AdmissionGate:
    """Counts admissions under way; feed reads wait for a pause in them."""

    def __init__(self, *, max_hold_s: float = MAX_HOLD_S) -> None:
        self._max_hold_s = max_hold_s
        self._admitting = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @asynccontextmanager
    async def admitting(self) -> AsyncIterator[None]:
        self._admitting += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._admitting -= 1
            if self._admitting == 0:
                self._quiet.set()

    async def quiet(self) -> None:
        """Return once no admission is under way, or after ``max_hold_s`` at most."""
        if self._quiet.is_set():
            return
        try:
            async with asyncio.timeout(self._max_hold_s):
                await self._quiet.wait()
        except TimeoutError:
            pass
