"""REST exec of an edge module: at the edge, and through the master (figure 3).

Master and edge are ``python -m app serve`` processes; the Echo module runs on the
edge. The client is httpx with keep-alive connections, making one call at a time
with the variants interleaved call by call:

- **direct**: ``POST /api/systems/{id}/exec`` at the edge;
- **forwarding hop**: the same through ``bench.forward_hop``, a process that relays
  each request and response (parsed with httptools, on uvloop, no framework): the
  floor of what any proxy in between costs;
- **proxy**: the same at the master with ``Prefer: routing=proxy``;
- **redirect**: the same at the master, which answers 307, then again at the edge —
  what a client following redirects pays on every call (httpx, like curl, would drop
  the token on the way to another origin, so the second request is made by hand);
- **over the link**: at the master, for an edge without ``api_url``, which the
  master then forwards over the control link. Measured after the other three, once
  the edge's ``api_url`` is removed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.node_process import HOST, ROOT, NodeProcess
from bench.link import PAYLOAD
from bench.report import Target
from bench.stats import Latency
from bench.support import (
    AUTH,
    ECHO_DRIVER,
    Api,
    EdgeRoom,
    edge_process,
    master_process,
    seed_edge_room,
    started,
)
from tests.support.wait import wait_until

PROXY_RATIO_LIMIT = 1.5

Call = Callable[[], Awaitable[None]]


class ExecClient:
    """Calls ``Echo.echo`` of a system's module over REST, each way a client can."""

    def __init__(self, http: httpx.AsyncClient, system_id: str) -> None:
        self._http = http
        self._path = f"/api/systems/{system_id}/exec"
        self._body = {"module": "Echo", "method": "echo", "args": [PAYLOAD]}

    async def at(self, base_url: str, *, prefer: str | None = None) -> None:
        headers = {"Prefer": f"routing={prefer}"} if prefer else None
        response = await self._http.post(base_url + self._path, json=self._body, headers=headers)
        self._check(response, 200)

    async def redirected(self, master_url: str) -> None:
        first = await self._http.post(master_url + self._path, json=self._body)
        self._check(first, 307)
        self._check(await self._http.post(first.headers["location"], json=self._body), 200)

    @staticmethod
    def _check(response: httpx.Response, status: int) -> None:
        if response.status_code != status:
            raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")


async def timed(calls: dict[str, Call], samples: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(samples):
        for name, call in calls.items():
            started = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - started)
    return times


@dataclass(frozen=True, slots=True)
class Site:
    master: NodeProcess
    edge: NodeProcess
    room: EdgeRoom
    api: Api


@asynccontextmanager
async def edge_site(workdir: Path) -> AsyncIterator[Site]:
    """A master and an edge process, the edge's ``api_url`` set and the edge in control."""
    master = await started(master_process(workdir / "master"))
    edge = None
    try:
        async with Api(master.url) as api:
            room = await seed_edge_room(
                api, driver=ECHO_DRIVER, module={"name": "Echo"}, edge={"timeout": 30}
            )
            edge = await started(edge_process(workdir / "edge", room, master.url))
            await api.patch(f"/api/edges/{room.edge_id}", {"api_url": edge.url})
            await wait_until(
                lambda: api.controlled_by(room.edge_id, "edge"),
                timeout=30,
                message="the edge to control its module",
            )
            yield Site(master, edge, room, api)
    finally:
        if edge is not None:
            await edge.stop()
        await master.stop()


@asynccontextmanager
async def forward_hop(upstream_port: int) -> AsyncIterator[str]:
    """A ``bench.forward_hop`` process in front of ``upstream_port``; yields its URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.forward_hop",
        str(upstream_port),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        await process.wait()


async def measure(workdir: Path, *, samples: int) -> dict[str, Any]:
    async with (
        edge_site(workdir) as site,
        forward_hop(site.edge.port) as hop_url,
        httpx.AsyncClient(headers=AUTH, timeout=10.0) as http,
    ):
        client = ExecClient(http, site.room.system_id)
        master_url, edge_url = site.master.url, site.edge.url
        calls: dict[str, Call] = {
            "direct": lambda: client.at(edge_url),
            "forwarding hop": lambda: client.at(hop_url),
            "proxy": lambda: client.at(master_url, prefer="proxy"),
            "redirect": lambda: client.redirected(master_url),
        }
        await timed(calls, max(5, samples // 10))  # warm-up
        times = await timed(calls, samples)
        await site.api.patch(f"/api/edges/{site.room.edge_id}", {"api_url": None})
        over_link: dict[str, Call] = {"over the link": lambda: client.at(master_url)}
        await wait_until(
            lambda: _answers(over_link["over the link"]),
            timeout=10,
            message="the master to forward over the link",
        )
        times.update(await timed(over_link, samples))
    latency = {name: Latency.of(values) for name, values in times.items()}
    target = Target(
        "REST exec by proxy / direct at the edge, p50",
        latency["proxy"].p50 / latency["direct"].p50,
        PROXY_RATIO_LIMIT,
        "x",
        at_most=True,
    )
    direct = latency["direct"].p50
    return {
        "latency_ms": {name: summary.as_json() for name, summary in latency.items()},
        "summary": {name: round(summary.p50 / direct, 3) for name, summary in latency.items()},
        "targets": [target.as_json()],
    }


async def _answers(call: Call) -> bool:
    try:
        await call()
    except RuntimeError:
        return False
    return True
