"""``python -m app ctl`` and the ``engine`` script against the running demo."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.demo import running_demo
from tests.support.engine import ROOT

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Site:
    url: str
    token: str
    edge: str
    edge_url: str

    async def ctl(self, *args: str, token: str | None = None, script: bool = False) -> Ran:
        """Run ``ctl`` with ENGINE_URL/ENGINE_TOKEN set, as a module or as ``engine``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
        env.update(ENGINE_URL=self.url, ENGINE_TOKEN=token or self.token)
        engine = Path(sys.executable).parent / "engine"
        command = [str(engine)] if script else [sys.executable, "-m", "app"]
        process = await asyncio.create_subprocess_exec(
            *command,
            "ctl",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with running_demo(tmp_path / "demo", "--failover-timeout", "30") as demo:
        edge_url = (await demo.read_until(r"^\s+edge\s+(http\S+)")).group(1)
        names = await demo.exports()
        yield Site(names["ENGINE_URL"], names["ENGINE_TOKEN"], names["EDGE"], edge_url)


def location_line(output: str, edge: str) -> list[str]:
    [line] = [line for line in output.splitlines() if line.startswith(edge)]
    return line.split()


async def test_status_takeover_and_restore(site: Site) -> None:
    status = await site.ctl("status")
    assert status.code == 0, status.err
    assert status.out.splitlines()[0].split()[:4] == ["ID", "NAME", "CONTROLLER", "ONLINE"]
    # id, "Sydney", "office", controller, online, epoch, failover
    assert location_line(status.out, site.edge)[1:7] == [
        "Sydney", "office", "edge", "yes", "1", "no"
    ]  # fmt: skip

    # A change needs a confirmation, and a script has no terminal to ask on.
    unconfirmed = await site.ctl("takeover", site.edge)
    assert unconfirmed.code == 2
    assert "pass --yes" in unconfirmed.err
    takeover = await site.ctl("takeover", site.edge, "--yes", script=True)
    assert takeover.code == 0, takeover.err
    assert takeover.out.startswith(f"{site.edge}: controller master, epoch 2, edge online")
    assert location_line((await site.ctl("status")).out, site.edge)[3:6] == ["master", "yes", "2"]

    # Asked of the edge, which sends control decisions to the master: ctl follows.
    # (the URL may leave its scheme out)
    edge_address = site.edge_url.removeprefix("http://")
    restore = await site.ctl("restore", site.edge, "--json", "--yes", "--url", edge_address)
    assert restore.code == 0, restore.err
    assert json.loads(restore.out)["controller"] == "edge"

    rotated = await site.ctl("rotate-secret", site.edge, "--yes", "--grace", "600")
    assert rotated.code == 0, rotated.err
    valid = rotated.out.splitlines()[2:]
    assert len(valid) == 2, rotated.out
    assert valid[0].endswith("the new one, valid until the next rotation")
    assert "(the edge's live link uses it)" in valid[1]

    events = await site.ctl("events", site.edge, "--limit", "2")
    lines = events.out.splitlines()
    assert len(lines) == 2
    assert "restore by user-admin" in lines[0]
    assert "takeover by user-admin" in lines[1]

    snapshot = json.loads((await site.ctl("--json", "status")).out)
    [location] = snapshot["locations"]
    assert (location["id"], location["control"]["controller"]) == (site.edge, "edge")


async def test_errors_are_one_line_and_a_non_zero_exit(site: Site) -> None:
    wrong = await site.ctl("status", token="not-a-token")
    assert wrong.code == 1
    assert wrong.out == ""
    assert wrong.err.splitlines() == [
        "error: 401 Unauthorized: the bearer token is not valid (unknown or revoked)"
    ]

    unknown = await site.ctl("restore", "edge-nope", "--yes", script=True)
    assert unknown.code == 1
    assert unknown.err.splitlines() == ["error: 404 Not Found: edge 'edge-nope' does not exist"]

    unreachable = await site.ctl("status", "--url", "http://127.0.0.1:9")
    assert unreachable.code == 1
    [line] = unreachable.err.splitlines()
    assert line.startswith("error: cannot reach http://127.0.0.1:9/api/status: ")
