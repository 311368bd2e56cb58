"""The hot paths' choices, measured side by side in one process (table 8).

Each row times the way the code used to do something against the way it does it now
(and the alternatives considered), interleaved round by round so that load from
elsewhere falls on all alike; the figure is the median round's time per operation.

- **codec**: writing and reading a link request (the exec frame), a small response,
  and a 1,000-change replica batch: pydantic's ``model_dump_json`` and
  ``validate_json``, the link's ``read`` (msgspec and a check of the envelope), orjson
  and msgspec;
- **argument check**: ``inspect.Signature.bind`` per call against the `Arity`
  compiled once per command;
- **a call's task**: awaiting a coroutine in a task of its own under
  ``asyncio.timeout`` against running it in the caller's task with a timer of its own,
  or with the module's one timer (`Deadlines`);
- **proxy client**: one forwarded request to a loopback server answering at once,
  with httpx's ``AsyncClient`` against `app.proxy_client.ProxyClient`.
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson

from app.link import Request, Response, decode, encode
from app.link.codec import read
from app.link.messages import FRAME_ADAPTER
from app.link.ops import EXEC
from app.proxy_client import ProxyClient
from app.runtime.deadlines import Deadlines
from app.runtime.introspect import Arity
from bench.link import PAYLOAD, exec_args

Op = Callable[[], Any]
AsyncOp = Callable[[], Awaitable[Any]]


def _per_op_us(op: Op, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        op()
    return (time.perf_counter() - started) / count * 1e6


async def _per_async_op_us(op: AsyncOp, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await op()
    return (time.perf_counter() - started) / count * 1e6


def compare(ops: dict[str, Op], count: int, rounds: int) -> dict[str, float]:
    """Microseconds per operation of each way, the median of ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    for op in ops.values():
        op()  # warm
    for _ in range(rounds):
        for name, op in ops.items():
            times[name].append(_per_op_us(op, count))
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


async def compare_async(ops: dict[str, AsyncOp], count: int, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in ops}
    for op in ops.values():
        await op()
    for _ in range(rounds):
        for name, op in ops.items():
            times[name].append(await _per_async_op_us(op, count))
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def _replica_batch() -> Response:
    body = {
        "driver_id": "drv-line",
        "name": "Display",
        "ip": "127.0.0.1",
        "port": 4000,
        "settings": {"reconnect_delay": 0.05, "reconnect_max": 0.5},
        "running": True,
    }
    changes = [
        {"seq": n, "id": f"mod-{n:05d}", "type": "module", "version": f"{n:016x}", "deleted": False}
        | {"body": body}
        for n in range(1000)
    ]
    return Response.success(7, {"changes": changes, "last_seq": 1000, "more": True, "horizon": 0})


def _orjson_then_pydantic(text: str) -> Any:
    return FRAME_ADAPTER.validate_python(orjson.loads(text))


def codec(count: int, rounds: int) -> dict[str, Any]:
    frames: dict[str, Request | Response] = {
        "exec request": Request(id=12345, op=EXEC.name, args=dict(exec_args("mod-00001"))),
        "small response": Response.success(12345, PAYLOAD),
        "replica batch (1,000 changes)": _replica_batch(),
    }
    rows: dict[str, Any] = {}
    for name, frame in frames.items():
        text = encode(frame)
        n = max(1, count // (1 + len(text) // 200))
        writes: dict[str, Op] = {
            "pydantic model_dump_json (before)": frame.model_dump_json,
            "orjson, from the frame (now)": partial(encode, frame),
        }
        reads: dict[str, Op] = {
            "pydantic validate_json (before)": partial(decode, text, max_size=1 << 22),
            "msgspec + envelope check, else pydantic (now)": partial(read, text, max_size=1 << 22),
            "orjson.loads + validate_python": partial(_orjson_then_pydantic, text),
            "orjson.loads, parse only": partial(orjson.loads, text),
            "msgspec.json.decode, parse only": partial(msgspec.json.decode, text),
        }
        wire = orjson.loads(text)
        writes["msgspec.json.encode of the frame's dict"] = partial(msgspec.json.encode, wire)
        writes["orjson.dumps of the frame's dict"] = partial(orjson.dumps, wire)
        rows[name] = {
            "bytes": len(text),
            "write_us": compare(writes, n, rounds),
            "read_us": compare(reads, n, rounds),
        }
    return rows


def argument_check(count: int, rounds: int) -> dict[str, float]:
    def echo(self: Any, value: Any, *, label: str = "") -> Any:
        return value

    signature = inspect.signature(echo)
    arity = Arity.of(list(signature.parameters.values())[1:])
    args, kwargs = [PAYLOAD], {"label": "x"}
    return compare(
        {
            "Signature.bind per call (before)": lambda: signature.bind(None, *args, **kwargs),
            "Arity compiled per command (now)": lambda: arity.fits(args, kwargs),
        },
        count,
        rounds,
    )


async def call_task(count: int, rounds: int) -> dict[str, float]:
    async def command() -> Any:
        await asyncio.sleep(0)
        return PAYLOAD

    async def own_task() -> Any:
        task = asyncio.create_task(command())
        async with asyncio.timeout(10):
            return await task

    async def callers_task() -> Any:
        timer = asyncio.get_running_loop().call_later(10, lambda: None)
        try:
            return await command()
        finally:
            timer.cancel()

    deadlines: Deadlines[object] = Deadlines(lambda _: None)

    async def callers_task_one_timer() -> Any:
        call = object()
        deadlines.add(call, 10)
        try:
            return await command()
        finally:
            deadlines.remove(call, 10)

    return await compare_async(
        {
            "own task + asyncio.timeout (first)": own_task,
            "caller's task + a timer (before)": callers_task,
            "caller's task + the module's one timer (now)": callers_task_one_timer,
        },
        count,
        rounds,
    )


_BODY = b'{"result":{"power":true,"input":"hdmi1","volume":42}}'
_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-engine-node: edge:e1\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


class _Answering(asyncio.Protocol):
    """Answers every request at once (one request per write, as the clients send them)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.WriteTransport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._transport.write(_ANSWER)


async def proxy_client(count: int, rounds: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answering, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/systems/sys-1/exec"
    headers = [("authorization", "Bearer token"), ("content-type", "application/json")]
    content = orjson.dumps({"module": "Echo", "method": "echo", "args": [PAYLOAD]})
    clients: dict[str, Any] = {
        "httpx AsyncClient (before)": httpx.AsyncClient(timeout=12.0),
        "ProxyClient (now)": ProxyClient(timeout=12.0, connect_timeout=3.0),
    }

    def forward(client: Any) -> AsyncOp:
        async def call() -> None:
            request = client.build_request("POST", url, headers=headers, content=content)
            response = await client.send(request, stream=True)
            assert [chunk async for chunk in response.aiter_raw()] == [_BODY]
            await response.aclose()

        return call

    try:
        return await compare_async(
            {name: forward(client) for name, client in clients.items()}, count, rounds
        )
    finally:
        for client in clients.values():
            await client.aclose()
        server.close()


async def measure(workdir: Path, *, count: int, rounds: int) -> dict[str, Any]:
    return {
        "count": count,
        "rounds": rounds,
        "codec": codec(count, rounds),
        "argument_check_us": argument_check(count, rounds),
        "call_task_us": await call_task(count, rounds),
        "proxy_client_us": await proxy_client(max(1, count // 20), rounds),
        "targets": [],
    }
