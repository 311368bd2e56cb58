"""A PlaceOS front end in node: the real ``@placeos/ts-client`` library, scripted.

``tests/frontend/client.mjs`` drives the library through its public API and speaks a
line protocol on stdin/stdout; :class:`FrontEnd` sends it requests and collects what
it pushes (binding values, debug lines, connection changes). ``make test-deps``
installs the pinned library (``npm ci --prefix tests/frontend``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

FRONTEND = Path(__file__).resolve().parents[1] / "frontend"
LIBRARY = FRONTEND / "node_modules" / "@placeos" / "ts-client"

Event = dict[str, Any]


def require_library() -> str:
    """The path of ``node``; skips the test (saying why) when it cannot run the library."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the PlaceOS client library needs it")
    if not LIBRARY.is_dir():
        pytest.fail("@placeos/ts-client is not installed: run make test-deps")
    return node


class FrontEndError(Exception):
    """The library rejected a request: ``error`` is what it rejected with."""

    def __init__(self, op: str, error: dict[str, Any]) -> None:
        super().__init__(f"{op}: {error}")
        self.error = error


class FrontEnd:
    """One node process running the library: one front end, one websocket."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[Event] = []
        self.noise: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def call(self, op: str, timeout: float = 20, **args: Any) -> Any:
        """Run ``op`` in the front end; its result, or ``FrontEndError``."""
        self._ids += 1
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = reply
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"id": self._ids, "op": op, **args}).encode() + b"\n")
        await self._process.stdin.drain()
        ok, value = await asyncio.wait_for(reply, timeout)
        if not ok:
            raise FrontEndError(op, value)
        return value

    async def wait_for(self, matches: Callable[[Event], bool], timeout: float = 20) -> Event:
        """The first event (since the process started) that ``matches``."""
        async with self._changed:
            async with asyncio.timeout(timeout):
                while True:
                    for event in self.events:
                        if matches(event):
                            return event
                    await self._changed.wait()

    def values(self, key: str) -> list[Any]:
        return [e["value"] for e in self.events if e.get("event") == "value" and e["key"] == key]

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                self.noise.append(raw.decode(errors="replace"))
                continue
            if "id" in message and message["id"] in self._pending:
                future = self._pending.pop(message["id"])
                if not future.done():
                    future.set_result((message["ok"], message.get("result", message.get("error"))))
                continue
            async with self._changed:
                self.events.append(message)
                self._changed.notify_all()

    async def close(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def front_end(ca: Path | None = None) -> AsyncIterator[FrontEnd]:
    """A fresh front end (the library keeps one connection per page, so one per process)."""
    node = require_library()
    env = dict(os.environ)
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    process = await asyncio.create_subprocess_exec(
        node,
        str(FRONTEND / "client.mjs"),
        cwd=FRONTEND,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 22,
    )
    client = FrontEnd(process)
    try:
        yield client
    finally:
        await client.close()
