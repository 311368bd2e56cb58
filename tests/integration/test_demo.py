"""``python -m app demo`` end to end: up, a call through the master, restart, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.demo import RunningDemo, running_demo

pytestmark = pytest.mark.integration

CALL = {"module": "Display", "index": 1, "method": "send", "args": ["POWER ON"]}


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[RunningDemo]:
    async with running_demo(tmp_path / "demo", "--failover-timeout", "30") as running:
        yield running


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
    names = await demo.exports()

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
