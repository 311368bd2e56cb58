"""``python -m app demo`` end to end, and the README's walkthrough run through bash as written."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.demo import RunningDemo, running_demo
from tests.support.engine import ROOT
from tests.support.wait import wait_until

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

    # The master killed: the demo goes on, and so does the room, at the edge (once the
    # edge started again runs its room: "up again" means ready, not yet negotiated).
    async with httpx.AsyncClient(headers=auth, timeout=10) as http:

        async def edge_in_control() -> bool:
            control = (await http.get(f"{names['API']}/edges/{names['EDGE']}/control")).json()
            return bool(control["controller"] == "edge" and control["online"])

        await wait_until(edge_in_control, timeout=30, message="the edge back in control")
    os.kill(master_pid, signal.SIGKILL)
    await demo.read_until(r"the master stopped \(killed by SIGKILL\); the edge goes on running")
    async with httpx.AsyncClient(headers=auth, timeout=10) as http:
        at_edge = await http.post(
            f"{names['EDGE_URL']}/api/systems/{names['ROOM']}/exec", json=CALL
        )
    assert at_edge.json() == {"result": "POWER ON"}, at_edge.text
    os.kill(demo.process.pid, signal.SIGUSR1)
    # The edge may relink before the master answers its readiness: either line first.
    heard: dict[str, str] = {}
    while len(heard) < 2:
        line = await demo.read_until(r"the master is up again \(pid (\d+)\)|edge: linked to")
        heard["master" if line.group(1) else "edge"] = line.group(1) or ""
    master_pid = int(heard["master"])

    demo.process.send_signal(signal.SIGINT)
    await demo.read_until(r"demo stopped", timeout=30)
    assert await asyncio.wait_for(demo.process.wait(), 10) == 0
    assert gone(master_pid), "the master outlived the demo"
    assert gone(new_edge_pid), "the edge outlived the demo"
    assert not list(Path(names["DEMO"]).glob("*.pid"))


# --- the README's walkthrough, run as written -----------------------------------------

README = ROOT / "README.md"
#: What each shell block of the walkthrough and of "Try it with curl" must print, in
#: README order: the outputs the README's comments show.
EXPECTED_OUTPUT = [
    [],  # H=(...)
    [
        r'\{"result":"POWER ON"\}',
        r"HTTP/1.1 307",
        r"(?i)location: http",
        r'\{"result":2\}',
        r'"AllOff_1":\{"connected_count":2\}',
    ],
    [
        r"Sydney office\s+edge\s+yes\s+1\s+no\s+\S+ 03:00 to 04:00 UTC",
        r'"controller":"edge","epoch":1,"online":true',
    ],
    [
        r"HTTP/1.1 503",
        r"(?i)retry-after: \d+",
        r'"controller":"master","epoch":2,"online":false,"failover_active":true',
        r'\{"result":"POWER ON"\}',
    ],
    [r'"controller":"master","epoch":2,"online":true,"failover_active":true'],
    [r'"controller":"edge","epoch":3,"online":true', r"restored?\b.*by user-admin"],
    [
        r'\{"result":"POWER ON"\}',
        r"edge:edge-\S+: MASTER UNREACHABLE to the master http://127\.0\.0\.1:\d+",
        r"this edge runs its location on its own",
        r'"controller":"edge","epoch":3,"online":true',
    ],
    [r'"id":"edge-[^"]+".*"secret":"', r'"name":"Display","ip":"127.0.0.1","port":4999'],
    [r'"status":422', r'"field":"window_start"'],
]


def shell_blocks(markdown: str, first: str, last: str) -> list[str]:
    """The ```sh blocks between the headings ``first`` and ``last``, dedented."""
    section = markdown[markdown.index(first) : markdown.index(last)]
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", section, flags=re.S | re.M)
    return [textwrap.dedent(body) for _, body in blocks]


def test_the_readme_blocks_are_where_the_test_expects_them() -> None:
    blocks = shell_blocks(README.read_text(), "## Demo walkthrough", "## Settings")
    assert len(blocks) == len(EXPECTED_OUTPUT)
    assert blocks[0].startswith("H=(")


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (make test-deps)")
@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "engine").exists(), reason="no .venv/bin/engine: run make"
)
async def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks(README.read_text(), "## Demo walkthrough", "## Settings")
    async with running_demo(tmp_path / "demo") as demo:
        export = (await demo.read_until(r"^export .*")).group(0)
        script = "set -eo pipefail\n" + export + "\n"
        for number, block in enumerate(blocks):
            script += f"echo; echo '@@ block {number}'\n{block}\n"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
        bash = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(120):
                output = (await bash.communicate())[0].decode()
        finally:
            if bash.returncode is None:
                bash.kill()
                await bash.wait()
    assert bash.returncode == 0, output
    printed = re.split(r"^@@ block \d+$", output, flags=re.M)[1:]
    assert len(printed) == len(blocks), output
    for number, (expected, got) in enumerate(zip(EXPECTED_OUTPUT, printed, strict=True)):
        for pattern in expected:
            assert re.search(pattern, got), f"block {number} lacks {pattern!r}:\n{got}"
