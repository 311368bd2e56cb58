"""``python -m app demo`` end to end: up, a call through the master, restart, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.engine import ROOT

pytestmark = pytest.mark.integration

CALL = {"module": "Display", "index": 1, "method": "send", "args": ["POWER ON"]}


@dataclass
class RunningDemo:
    process: asyncio.subprocess.Process
    output: list[str]

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


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[RunningDemo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "app", "demo", "--data-dir", str(tmp_path / "demo")),
        *("--master-port", "0", "--edge-port", "0", "--failover-timeout", "30"),
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield RunningDemo(process, [])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_the_demo_serves_a_call_restarts_the_edge_and_stops_cleanly(
    demo: RunningDemo,
) -> None:
    master_pid = int((await demo.read_until(r"^\s+master\s+http\S+\s+\(pid (\d+)")).group(1))
    edge_pid = int((await demo.read_until(r"^\s+edge\s+http\S+\s+\(pid (\d+)")).group(1))
    await demo.read_until(r"^\s+admin token\s+\S+")
    export = (await demo.read_until(r"^export .*")).group(0)
    names = dict(word.split("=", 1) for word in shlex.split(export)[1:])

    auth = {"Authorization": f"Bearer {names['T']}"}
    async with httpx.AsyncClient(headers=auth, timeout=10) as http:
        redirected = await http.post(f"{names['API']}/systems/{names['ROOM']}/exec", json=CALL)
        assert redirected.status_code == 307, redirected.text
        # What curl --location-trusted does: the same request, credentials included.
        answered = await http.post(redirected.headers["location"], json=CALL)
        assert answered.json() == {"result": "POWER ON"}
        assert answered.headers["x-engine-node"] == f"edge:{names['EDGE']}"

    os.kill(edge_pid, signal.SIGKILL)
    await demo.read_until(r"the edge stopped \(killed by SIGKILL\)")
    os.kill(demo.process.pid, signal.SIGUSR1)
    new_edge_pid = int((await demo.read_until(r"the edge is up again \(pid (\d+)\)")).group(1))
    assert new_edge_pid != edge_pid

    demo.process.send_signal(signal.SIGINT)
    await demo.read_until(r"demo stopped", timeout=30)
    assert await asyncio.wait_for(demo.process.wait(), 10) == 0
    assert gone(master_pid), "the master outlived the demo"
    assert gone(new_edge_pid), "the edge outlived the demo"
    assert not list(Path(names["DEMO"]).glob("*.pid"))
