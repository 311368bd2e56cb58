"""Fixtures for the module runtime: a driver repository, a manager, a line device."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.node import bundled_drivers
from app.runtime import DriverRepository, ModuleManager, ModuleSpec, Role, Status
from app.runtime.status import DebugCallback, StatusCallback, Unsubscribe
from app.sim.line_device import LineDevice

BUNDLED_DRIVERS = bundled_drivers()

#: Reconnect within milliseconds, so tests of dropped connections stay fast.
FAST_RECONNECT = {"reconnect_delay": 0.01, "reconnect_max": 0.05}

#: A driver that records its lifecycle in the ``journal`` list it gets as a setting.
PROBE = '''
from __future__ import annotations

import asyncio

from app.runtime import Driver


class Probe(Driver):
    """Records its lifecycle and offers commands that succeed, fail and hang."""

    async def on_start(self) -> None:
        self.settings["journal"].append(("start", self.id))
        if self.settings.get("fail_start"):
            raise RuntimeError("the device refused")
        if self.settings.get("hang_start"):
            await asyncio.Event().wait()

    async def on_stop(self) -> None:
        self.settings["journal"].append(("stop", self.id))
        if self.settings.get("fail_stop"):
            raise RuntimeError("cannot close")

    async def add(self, a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    def double(self, value: int) -> int:
        return value * 2

    async def broken(self) -> int:
        return len(None)  # type: ignore[arg-type]

    async def hang(self) -> None:
        self.settings["journal"].append(("hang", self.id))
        try:
            await asyncio.Event().wait()
        finally:
            self.settings["journal"].append(("cancelled", self.id))

    def setting_of(self, name: str) -> object:
        return self.settings.get(name)

    async def flag(self, value: object) -> None:
        self.status["flag"] = value

    async def _private(self) -> None:
        return None
'''


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once ``predicate()`` holds, checking at every turn of the event loop."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the condition has no event to wait on
            await asyncio.sleep(0.001)


class Changes:
    """Records ``(name, value)`` notifications and waits for one to arrive."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()

    def __call__(self, name: str, value: Any) -> None:
        self.seen.append((name, value))
        self._arrived.set()

    async def wait_for(self, name: str, value: Any, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: (name, value) in self.seen, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()


class StubModule:
    """A module handle that answers from memory, as a proxy for a remote module would."""

    def __init__(self, module_id: str, name: str) -> None:
        self.id = module_id
        self.name = name
        self.status = Status()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], float | None]] = []

    async def exec(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append((method, tuple(args), dict(kwargs or {}), timeout))
        return f"{self.id}.{method}"

    def state(self) -> dict[str, Any]:
        return self.status.snapshot()

    def funcs(self) -> dict[str, dict[str, Any]]:
        return {"power": {"params": [], "doc": None}}

    def subscribe_status(self, callback: StatusCallback) -> Unsubscribe:
        return self.status.subscribe(callback)

    def subscribe_debug(self, callback: DebugCallback) -> Unsubscribe:
        return lambda: None


DriverWriter = Callable[[str, str], None]


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """A copy of the bundled drivers (not a git checkout: most tests need no git)."""
    path = tmp_path / "drivers"
    shutil.copytree(BUNDLED_DRIVERS, path)
    return path


@pytest.fixture
def write_driver(repo_path: Path) -> DriverWriter:
    def write(file: str, source: str) -> None:
        target = repo_path / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))

    return write


@pytest.fixture
def probe(write_driver: DriverWriter) -> str:
    write_driver("tests/probe.py", PROBE)
    return "tests/probe.py"


@pytest.fixture
async def manager(repo_path: Path) -> AsyncIterator[ModuleManager]:
    manager = ModuleManager(
        DriverRepository(repo_path, BUNDLED_DRIVERS), exec_timeout=2.0, hook_timeout=2.0
    )
    yield manager
    await manager.stop_all()


@pytest.fixture
async def line_device() -> AsyncIterator[LineDevice]:
    device = LineDevice(name="Display_1", reply=lambda line: f"ack {line}")
    await device.start()
    yield device
    await device.stop()


def module_spec(
    module_id: str,
    file: str,
    class_name: str,
    role: Role = "service",
    *,
    name: str | None = None,
    driver_id: str | None = None,
    **fields: Any,
) -> ModuleSpec:
    return ModuleSpec(
        id=module_id,
        name=name or class_name,
        driver_id=driver_id or f"drv-{class_name}",
        file=file,
        class_name=class_name,
        role=role,
        **fields,
    )


def probe_spec(
    module_id: str,
    journal: list[tuple[str, str]],
    role: Role = "service",
    **settings: Any,
) -> ModuleSpec:
    return module_spec(
        module_id, "tests/probe.py", "Probe", role, settings={"journal": journal, **settings}
    )


def tcp_line_spec(
    module_id: str, port: int, *, name: str = "Display", **settings: Any
) -> ModuleSpec:
    return module_spec(
        module_id,
        "generic/tcp_line.py",
        "TcpLine",
        "device",
        name=name,
        driver_id="drv-tcp-line",
        ip="127.0.0.1",
        port=port,
        settings={**FAST_RECONNECT, **settings},
    )
