"""``python -m app demo`` as a subprocess whose output a test reads line by line."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.engine import ROOT


@dataclass
class RunningDemo:
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    async def read_until(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line from now on matching ``pattern``."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("the demo exited:\n" + "".join(self.output))
                self.output.append(line)
                found = re.search(pattern, line)
                if found:
                    return found

    async def exports(self) -> dict[str, str]:
        """The variables of the ``export`` line the demo prints once everything is up."""
        export = (await self.read_until(r"^export .*")).group(0)
        return dict(word.split("=", 1) for word in shlex.split(export)[1:])


@asynccontextmanager
async def running_demo(data_dir: Path, *options: str) -> AsyncIterator[RunningDemo]:
    """The demo on free ports with fresh stores in ``data_dir``; killed afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "app", "demo", "--data-dir", str(data_dir)),
        *("--master-port", "0", "--edge-port", "0", *options),
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield RunningDemo(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
