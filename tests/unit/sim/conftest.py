from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]


@dataclass
class SimulatorProcess:
    process: asyncio.subprocess.Process
    name: str
    port: int


SimulatorLauncher = Callable[..., Awaitable[SimulatorProcess]]


@pytest.fixture
async def launch() -> AsyncIterator[SimulatorLauncher]:
    """Starts ``python -m <module> <args>`` and reads its ready line; kills leftovers after."""
    started: list[asyncio.subprocess.Process] = []

    async def launch(module: str, *args: str) -> SimulatorProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args, cwd=REPOSITORY, stdout=asyncio.subprocess.PIPE
        )
        started.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(10):
            line = await process.stdout.readline()
        ready = json.loads(line)
        return SimulatorProcess(process, name=ready["name"], port=ready["port"])

    yield launch
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()
