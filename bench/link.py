"""The control link against a bare websocket between two processes (figures 1 and 2).

This process plays the master: the real application, served by uvicorn here as
``python -m app serve`` would serve it. The edge is a real ``python -m app serve``
process running one Echo module (no device I/O). A **full exec** takes the path a
master's router gives it — ``RemoteModule.exec`` → ``LinkConnection.request`` →
uvicorn and Starlette's websocket → the edge's ``exec`` handler → the module runtime
→ ``Echo.echo`` → back — with no HTTP on either side.

Two baselines run between this process and a ``bench.echo_peer`` process, which
connects out as an edge does, over the ``websockets`` library on both ends, on the
same event loop (uvloop) and with the link's websocket settings: no
permessage-deflate, the same frame size limit.

- **bare websocket**: the very frame a full exec puts on the link, echoed back;
  calls in flight are matched to replies in order, the least a multiplexed channel
  can do.
- **link protocol**: ``LinkConnection`` on both ends (frames, codec, pending table, a
  task per request) with an ``exec`` op that returns its argument, so the protocol's
  own cost shows apart from the server stack and the module runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import uvicorn
from websockets.asyncio.server import Server, ServerConnection, serve

from app.link import DEFAULT_MAX_SIZE, LinkConnection, Request, WebsocketsTransport, encode
from app.link.ops import EXEC, ExecArgs
from app.main import compose, create_app
from app.node_process import HOST, ROOT, NodeProcess, free_port
from app.runtime.handle import ModuleHandle
from app.runtime.reports import JsonValue
from app.settings import Settings
from bench.report import Target
from bench.stats import Latency
from bench.support import (
    ECHO_DRIVER,
    TOKEN,
    Api,
    EdgeRoom,
    edge_process,
    seed_edge_room,
    started,
)
from tests.support.wait import wait_until as wait_for

Call = Callable[[], Awaitable[Any]]

#: What each exec carries: a small status-like value, as a front end would send.
PAYLOAD = {"power": True, "input": "hdmi1", "volume": 42}
LATENCY_RATIO_LIMIT = 1.3
THROUGHPUT_LIMIT = 5_000.0
THROUGHPUT_SHARE_LIMIT = 0.6


class InProcessMaster:
    """The master application served by uvicorn inside this process."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        self.url = f"http://{HOST}:{port}"
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{workdir / 'engine.db'}",
            drivers_path=workdir / "drivers",
            admin_token=TOKEN,
            public_url=self.url,
            host=HOST,
            port=port,
            boot_wait_s=0.5,
        )
        self.node = compose(settings)
        self.app = create_app(settings, node=self.node)
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=port,
            log_level="warning",
            access_log=False,
            ws_ping_interval=settings.ping_interval_s,
            ws_ping_timeout=3 * settings.ping_interval_s,
            ws_max_size=settings.link_max_frame,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessMaster:
        self._serving = asyncio.create_task(self._server.serve())
        await wait_for(lambda: self._server.started, timeout=30, message="the master to listen")
        await wait_for(lambda: self.node.boot.ready, timeout=30, message="the master to boot")
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.should_exit = True
        if self._serving is not None:
            await self._serving

    def module(self, module_id: str) -> ModuleHandle:
        """The master's handle of a module, as its routers would get it."""
        handle = self.node.modules.manager.find(module_id)
        if handle is None:
            raise RuntimeError(f"the master does not see {module_id} on an edge")
        return handle


@dataclass(frozen=True, slots=True)
class LinkedEdge:
    """The master in this process, an edge process linked to it, and its Echo module."""

    master: InProcessMaster
    edge: NodeProcess
    room: EdgeRoom
    api: Api

    @property
    def module(self) -> ModuleHandle:
        return self.master.module(self.room.module_id)


@asynccontextmanager
async def linked_edge(
    workdir: Path, edge_kind: type[NodeProcess] = NodeProcess
) -> AsyncIterator[LinkedEdge]:
    """Seed an edge location with one Echo module, start its edge, wait for it in control."""
    async with InProcessMaster(workdir / "master") as master, Api(master.url) as api:
        room = await seed_edge_room(
            api, driver=ECHO_DRIVER, module={"name": "Echo"}, edge={"timeout": 30}
        )
        edge = await started(edge_process(workdir / "edge", room, master.url, kind=edge_kind))
        PLACEMENT.peer(edge.pid)
        try:
            await wait_for(
                lambda: api.controlled_by(room.edge_id, "edge"),
                timeout=30,
                message="the edge to control its module",
            )
            yield LinkedEdge(master, edge, room, api)
        finally:
            await edge.stop()


class EchoPeer:
    """This end of a websocket to a ``bench.echo_peer`` process in ``mode``."""

    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._connection: ServerConnection | None = None
        self._connected = asyncio.Event()
        self._server: Server | None = None
        self._peer: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._serve, HOST, 0, max_size=DEFAULT_MAX_SIZE, compression=None
        )
        port = self._server.sockets[0].getsockname()[1]
        self._peer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.echo_peer", f"ws://{HOST}:{port}", self._mode, cwd=ROOT
        )
        await asyncio.wait_for(self._connected.wait(), 30)
        PLACEMENT.peer(self._peer.pid)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._peer is not None:
            await self._peer.wait()

    async def _serve(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._connected.set()
        await self.serve(connection)

    async def serve(self, connection: ServerConnection) -> None:
        """Read from the peer until it goes."""
        raise NotImplementedError


class BareEcho(EchoPeer):
    """Frames out and the same frames back, matched in order."""

    def __init__(self) -> None:
        super().__init__("bare")
        self._waiting: deque[asyncio.Future[str | bytes]] = deque()

    async def call(self, frame: str) -> None:
        """Send ``frame`` and wait for it to come back."""
        assert self._connection is not None
        reply = asyncio.get_running_loop().create_future()
        self._waiting.append(reply)
        await self._connection.send(frame)
        await reply

    async def serve(self, connection: ServerConnection) -> None:
        async for message in connection:
            self._waiting.popleft().set_result(message)


class LinkEcho(EchoPeer):
    """The link protocol to a peer whose ``exec`` returns its argument."""

    def __init__(self) -> None:
        super().__init__("link")
        self.link: LinkConnection | None = None

    async def call(self, args: ExecArgs) -> JsonValue:
        assert self.link is not None
        return await EXEC.call(self.link, args)

    async def serve(self, connection: ServerConnection) -> None:
        self.link = LinkConnection(
            WebsocketsTransport(connection), handlers={}, name="peer", max_size=DEFAULT_MAX_SIZE
        )
        await self.link.run()


async def interleaved_latency(calls: dict[str, Call], samples: int) -> dict[str, list[float]]:
    """Round trips of each call, alternating call by call so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(samples):
        for name, call in calls.items():
            started = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - started)
    return times


async def throughput(call: Call, concurrency: int, duration: float) -> dict[str, Any]:
    """Calls per second with ``concurrency`` callers looping for ``duration`` seconds."""
    times: list[float] = []
    stop_at = time.monotonic() + duration

    async def caller() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            await call()
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "calls": len(times),
        "per_second": len(times) / elapsed,
        "latency_ms": Latency.of(times).as_json(),
    }


def exec_args(module_id: str) -> ExecArgs:
    """The arguments of the ``exec`` request the master sends for ``Echo.echo(PAYLOAD)``."""
    return {
        "module_id": module_id,
        "method": "echo",
        "args": [PAYLOAD],
        "kwargs": {},
        "timeout": 10.0,
    }


async def alternating_throughput(
    calls: dict[str, Call], concurrencies: Sequence[int], duration: float, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Each call's throughput at each concurrency: the median of ``rounds`` trials.

    The calls take turns trial by trial, so a burst of load from elsewhere on the
    machine does not fall on one of them only.
    """
    rates: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
    for concurrency in concurrencies:
        trials: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                trials[name].append(await throughput(call, concurrency, duration))
        for name, results in trials.items():
            ranked = sorted(results, key=lambda r: float(r["per_second"]))
            rates[name].append(
                {
                    **ranked[len(ranked) // 2],
                    "trials_per_second": [r["per_second"] for r in results],
                }
            )
    return rates


class Placement:
    """The same CPUs for every variant: this process on one, every peer on the other.

    A round trip between two processes costs more when the scheduler puts them on
    different CPUs (a wake-up across CPUs) than on the same one, and it places each new
    process as it likes: in runs of the same code the bare floor's p50 moved between
    123 and 164 µs while the link's hardly did, and the ratio with it. Pinned, each
    variant crosses between the same two CPUs. With fewer than two CPUs nothing is
    pinned.
    """

    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._all = set(cpus)
        self._ours: set[int] | None = {cpus[0]} if len(cpus) >= 2 else None
        self._peers: set[int] | None = {cpus[1]} if len(cpus) >= 2 else None

    def describe(self) -> str:
        if self._ours is None:
            return "not pinned (fewer than two CPUs)"
        return f"this process on CPU {min(self._ours)}, every peer on CPU {min(self._peers or ())}"

    def __enter__(self) -> Placement:
        if self._ours is not None:
            _pin(os.getpid(), self._ours)
        return self

    def __exit__(self, *_: object) -> None:
        if self._ours is not None:
            _pin(os.getpid(), self._all)

    def peer(self, pid: int) -> None:
        """Put a running peer process, every thread of it, on the peers' CPU."""
        if self._peers is not None:
            _pin(pid, self._peers)


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (an affinity is a thread's own on Linux)."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(thread.name), cpus)


PLACEMENT = Placement()


async def measure(
    workdir: Path, *, samples: int, concurrencies: Sequence[int], duration: float, rounds: int
) -> dict[str, Any]:
    with PLACEMENT:
        return await _measure(
            workdir, samples=samples, concurrencies=concurrencies, duration=duration, rounds=rounds
        )


async def _measure(
    workdir: Path, *, samples: int, concurrencies: Sequence[int], duration: float, rounds: int
) -> dict[str, Any]:
    async with linked_edge(workdir) as site, BareEcho() as bare, LinkEcho() as protocol:
        module = site.module
        args = exec_args(module.id)
        frame = encode(Request(id=1, op=EXEC.name, args=dict(args)))
        calls: dict[str, Call] = {
            "bare websocket": lambda: bare.call(frame),
            "link protocol": lambda: protocol.call(args),
            "full exec": lambda: module.exec("echo", [PAYLOAD]),
        }
        await interleaved_latency(calls, max(10, samples // 10))  # warm-up
        latency = {
            name: Latency.of(times)
            for name, times in (await interleaved_latency(calls, samples)).items()
        }
        rates = await alternating_throughput(calls, concurrencies, duration, rounds)
    return {
        "frame_bytes": len(frame),
        "latency_ms": {name: summary.as_json() for name, summary in latency.items()},
        "throughput": rates,
        "baselines": "websockets on both ends, compression=None, max_size 1 MiB, uvloop",
        "placement": PLACEMENT.describe(),
        "summary": {
            "p50_ms": {name: round(summary.p50, 4) for name, summary in latency.items()},
            "p50_over_bare": {
                name: round(summary.p50 / latency["bare websocket"].p50, 3)
                for name, summary in latency.items()
            },
            "per_second_over_bare": {
                name: round(rows[-1]["per_second"] / rates["bare websocket"][-1]["per_second"], 3)
                for name, rows in rates.items()
            },
        },
        "targets": [t.as_json() for t in targets(latency, rates)],
    }


def targets(latency: dict[str, Latency], rates: dict[str, list[dict[str, Any]]]) -> list[Target]:
    full, bare = rates["full exec"][-1], rates["bare websocket"][-1]
    return [
        Target(
            "exec over the link / fair bare websocket echo, p50",
            latency["full exec"].p50 / latency["bare websocket"].p50,
            LATENCY_RATIO_LIMIT,
            "x",
            at_most=True,
        ),
        Target(
            f"execs/s over the link, {full['concurrency']} concurrent",
            full["per_second"],
            THROUGHPUT_LIMIT,
            "execs/s",
            at_most=False,
        ),
        Target(
            f"link / fair bare echo throughput, {full['concurrency']} concurrent",
            full["per_second"] / bare["per_second"],
            THROUGHPUT_SHARE_LIMIT,
            "x",
            at_most=False,
        ),
    ]
