"""Simulated devices in a process of their own, logging every connection and who holds it.

``python -m tests.soak.faults.devices --count N`` serves N line-protocol devices
(``dev1`` … ``devN``, :class:`app.sim.line_device.LineDevice`) on loopback and prints,
on standard output, one JSON line ``{"ports": {"dev1": PORT, …}}`` once they listen,
then a line per connection opened or closed:
``{"t": MONOTONIC, "device": "dev1", "event": "open", "peer": "127.0.0.1:P", "pid": PID}``.

The pid is that of the process holding the other end, found in ``/proc`` while the
connection is open (:func:`tests.support.owners.connection_owner`) among the processes
started by this one's parent: the runner's servers. Run apart from the runner so a
busy runner does not delay the device's clock. It stops with its parent.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import signal
import sys
from pathlib import Path

from app.sim.line_device import LineDevice, _Client
from tests.support.owners import connection_owner


def siblings() -> dict[str, int]:
    """The processes this one's parent started (besides this one), by pid."""
    parent, own = os.getppid(), os.getpid()
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            found[entry.name] = int(entry.name)
    return found


class LoggedDevice(LineDevice):
    """A line device that prints each connection, and its holder, as it happens."""

    def _opened(self, writer: asyncio.StreamWriter) -> _Client:
        client = super()._opened(writer)
        client_port = int(client.peer.rsplit(":", 1)[1])
        owner = connection_owner(client_port, self.port, siblings())
        self._log("open", client.peer, int(owner) if owner is not None else None)
        return client

    def _closed(self, client: _Client) -> None:
        super()._closed(client)
        self._log("close", client.peer, None)

    def _log(self, event: str, peer: str, pid: int | None) -> None:
        at = self.events[-1][0]
        line = {"t": at, "device": self.name, "event": event, "peer": peer, "pid": pid}
        try:
            print(json.dumps(line), flush=True)
        except BrokenPipeError:
            os._exit(0)  # the runner is gone: nobody is listening any more


def _stop_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


async def serve(count: int) -> None:
    devices = [LoggedDevice(name=f"dev{n}") for n in range(1, count + 1)]
    for device in devices:
        await device.start()
    print(json.dumps({"ports": {d.name: d.port for d in devices}}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for device in devices:
            await device.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()
    if sys.platform == "linux":
        _stop_with_parent()
    asyncio.run(serve(args.count))


if __name__ == "__main__":
    main()
