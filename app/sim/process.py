"""Running a simulated device as a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Protocol


class Simulator(Protocol):
    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def argument_parser(description: str, default_name: str) -> argparse.ArgumentParser:
    """The options every simulator takes; each adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--name", default=default_name, help="name echoed in the ready line")
    return parser


def run(device: Simulator, name: str) -> None:
    """Serve until SIGTERM or SIGINT, after announcing the port on one JSON line."""
    asyncio.run(_serve(device, name))


async def _serve(device: Simulator, name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await device.start()
    try:
        print(json.dumps({"name": name, "port": device.port}), flush=True)
        await stop.wait()
    finally:
        await device.stop()
