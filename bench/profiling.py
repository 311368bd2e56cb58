"""Where the time goes: cProfile of both ends of the link, the proxying master and boot.

``python -m bench --profile`` writes ``profile_*.txt`` next to the results: the top
functions by own time and by cumulative time. Profiling slows everything down, so
these files tell proportions, not speeds.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import signal
import sys
import sysconfig
from pathlib import Path

import httpx

from app.main import compose, create_app
from app.node_process import ROOT, NodeProcess
from app.settings import Settings
from bench import boot, fleet
from bench.link import PAYLOAD, linked_edge, throughput
from bench.rest import ExecClient
from bench.support import AUTH

TOP = 30


class ProfiledNode(NodeProcess):
    """A server run under cProfile; its profile is written when it stops."""

    def __init__(self, name: str, workdir: Path, port: int, settings: dict[str, str]) -> None:
        super().__init__(name, workdir, port, settings)
        self.profile_path = workdir / f"{name}.prof"

    def command(self) -> list[str]:
        python, *rest = super().command()
        return [python, "-m", "cProfile", "-o", str(self.profile_path), *rest]

    async def stop(self) -> None:
        """SIGINT: uvicorn shuts down and re-raises it, and cProfile writes on the way out."""
        if self.running:
            os.kill(self.pid, signal.SIGINT)
            await asyncio.wait_for(self.wait(), 30)


def report(stats: pstats.Stats, title: str) -> str:
    """The top functions by own and by cumulative time, with short file names."""
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    text.write(f"# {title}\n\n")
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumulative").print_stats(TOP)
    prefixes = (sysconfig.get_paths()["purelib"] + "/", str(ROOT) + "/", sys.base_prefix + "/")
    result = text.getvalue()
    for prefix in prefixes:
        result = result.replace(prefix, "")
    return result


async def link_profiles(workdir: Path, duration: float) -> dict[str, str]:
    profiler = cProfile.Profile()
    async with linked_edge(workdir, edge_kind=ProfiledNode) as site:
        module = site.module
        await throughput(lambda: module.exec("echo", [PAYLOAD]), 100, duration / 4)
        profiler.enable()
        await throughput(lambda: module.exec("echo", [PAYLOAD]), 100, duration)
        profiler.disable()
        edge = site.edge
    assert isinstance(edge, ProfiledNode)
    return {
        "link_master": report(pstats.Stats(profiler), "master: 100 concurrent execs over the link"),
        "link_edge": report(
            pstats.Stats(str(edge.profile_path)),
            "edge process, start to stop: 100 concurrent execs over the link",
        ),
    }


async def proxy_profile(workdir: Path, calls: int) -> str:
    """The master proxying execs to the edge; requests enter its app in-process (ASGI)."""
    profiler = cProfile.Profile()
    async with linked_edge(workdir) as site:
        await site.api.patch(f"/api/edges/{site.room.edge_id}", {"api_url": site.edge.url})
        transport = httpx.ASGITransport(app=site.master.app)
        async with httpx.AsyncClient(transport=transport, headers=AUTH, timeout=10.0) as http:
            client = ExecClient(http, site.room.system_id)
            for _ in range(max(1, calls // 10)):
                await client.at(site.master.url, prefer="proxy")
            profiler.enable()
            for _ in range(calls):
                await client.at(site.master.url, prefer="proxy")
            profiler.disable()
    return report(
        pstats.Stats(profiler), f"master: {calls} execs proxied to the edge, one at a time"
    )


async def boot_profile(workdir: Path, modules: int) -> str:
    """The master's boot over ``modules`` modules, in this process."""
    await boot.seed(workdir / "engine.db", modules)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{workdir / 'engine.db'}",
        drivers_path=workdir / "drivers",
        boot_wait_s=0,
    )
    node = compose(settings)
    create_app(settings, node=node)
    profiler = cProfile.Profile()
    profiler.enable()
    await node.start()
    while not node.boot.ready:  # noqa: ASYNC110 - boot has no event to wait on
        await asyncio.sleep(0.01)
    profiler.disable()
    await node.stop()
    return report(pstats.Stats(profiler), f"master boot over {modules:,} modules")


async def fleet_idle_profile(workdir: Path, edges: int, seconds: float) -> str:
    """The master process, start to stop: ``edges`` simulated edges connect, catch up, idle."""
    master = await fleet.idle_profile_run(workdir, edges, seconds, ProfiledNode)
    assert isinstance(master, ProfiledNode)
    return report(
        pstats.Stats(str(master.profile_path)),
        f"master process, start to stop: {edges} edges connect, catch up, then idle "
        f"for {seconds:g} s",
    )


async def profile_all(
    workdir: Path, *, duration: float, calls: int, modules: int, edges: int
) -> dict[str, str]:
    profiles = await link_profiles(workdir / "link", duration)
    profiles["fleet_master"] = await fleet_idle_profile(workdir / "fleet", edges, 4 * duration)
    profiles["rest_proxy_master"] = await proxy_profile(workdir / "rest", calls)
    (workdir / "boot").mkdir()
    profiles["boot"] = await boot_profile(workdir / "boot", modules)
    return profiles
