"""Pushes every status change and log line of the edge's modules to the master."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from app.link import LinkClosed, LinkConnection
from app.runtime.status import Unsubscribe


class StatusForwarder:
    """Pushes every status change and log line of the edge's modules to the master."""

    def __init__(self, link: Callable[[], LinkConnection | None]) -> None:
        self._link = link
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=10_000)
        self._status: dict[str, Unsubscribe] = {}
        self._debug: dict[str, Unsubscribe] = {}

    def push(self, event: str, **fields: Any) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((event, fields))

    async def run(self) -> None:
        while True:
            event, fields = await self._queue.get()
            link = self._link()
            if link is not None:
                with contextlib.suppress(LinkClosed):
                    await link.send_event(event, **fields)

    def track(self, handles: dict[str, Any]) -> None:
        """Follow the status of exactly the modules in ``handles``."""
        for module_id in [m for m in self._status if m not in handles]:
            self._status.pop(module_id)()
        for module_id, handle in handles.items():
            if module_id not in self._status:
                self._status[module_id] = handle.subscribe_status(
                    lambda name, value, module_id=module_id: self.push(
                        "status", module_id=module_id, name=name, value=value
                    )
                )

    def debug(self, module_id: str, handle: Any | None) -> None:
        """Relay (``handle`` given) or stop relaying a module's log lines."""
        stop = self._debug.pop(module_id, None)
        if stop is not None:
            stop()
        if handle is not None:
            self._debug[module_id] = handle.subscribe_debug(
                lambda level, msg: self.push("debug", module_id=module_id, level=level, msg=msg)
            )
