"""Which process holds a TCP connection on loopback, read from Linux's ``/proc``.

A device sees its clients only as ``127.0.0.1:<port>``; this finds the socket with
that local port in the kernel's connection table and the process whose file
descriptors include it, so a test can tell the master's connection from an edge's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.sim.line_device import LineDevice
from tests.support.wait import wait_until

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def connection_owner(client_port: int, server_port: int, pids: Mapping[str, int]) -> str | None:
    """The name (a key of ``pids``) of the process holding that open connection, if any."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    for name, pid in pids.items():
        descriptors = Path(f"/proc/{pid}/fd")
        try:
            if any(_readlink(fd) == link for fd in descriptors.iterdir()):
                return name
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # the process is gone, or not ours to look at
    return None


def _socket_inode(client_port: int, server_port: int) -> int | None:
    for table in _TABLES:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if _port(local) == client_port and _port(remote) == server_port and inode:
                return inode
    return None


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


@dataclass
class DeviceConnection:
    """One connection a device saw, and the process that opened it."""

    peer: str
    opened: float
    closed: float | None = None
    owner: str | None = None

    @property
    def open(self) -> bool:
        return self.closed is None


class DeviceWatch:
    """Names the engine process behind every connection a :class:`LineDevice` sees.

    Owners can only be read while a connection is open, so a background task follows
    the device's events and resolves each new connection at once. ``pids`` gives the
    current process ids by name (a restarted process has a new one).
    """

    def __init__(
        self, device: LineDevice, pids: Callable[[], Mapping[str, int]], *, interval: float = 0.005
    ) -> None:
        self.device = device
        self.connections: list[DeviceConnection] = []
        self._pids = pids
        self._interval = interval
        self._seen = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DeviceWatch:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def owners(self) -> list[str | None]:
        """Who opened each connection, in order."""
        self._catch_up()
        return [connection.owner for connection in self.connections]

    def open_owners(self) -> list[str | None]:
        """Who holds the connections open now."""
        self._catch_up()
        return [c.owner for c in self.connections if c.open]

    def overlap_s(self) -> float:
        """Seconds during which two or more connections were open at once."""
        total, depth, since = 0.0, 0, 0.0
        for at, kind, _ in self.device.events:
            depth += 1 if kind == "open" else -1
            if kind == "open" and depth == 2:
                since = at
            elif kind == "close" and depth == 1:
                total += at - since
        if depth >= 2:
            total += time.monotonic() - since
        return total

    async def wait_held_by(self, owner: str, timeout: float) -> float:
        """Wait until ``owner`` alone holds the device; returns the monotonic time it did."""
        await wait_until(
            lambda: self.open_owners() == [owner],
            timeout=timeout,
            interval=self._interval,
            message=f"{owner} alone to hold {self.device.name} (held by {self.open_owners()})",
        )
        return time.monotonic()

    async def wait_released(self, timeout: float) -> None:
        """Wait until nobody holds the device."""
        await wait_until(
            lambda: self.open_owners() == [],
            timeout=timeout,
            interval=self._interval,
            message=f"{self.device.name} to be released (held by {self.open_owners()})",
        )

    async def keeps(self, owners: list[str], seconds: float) -> None:
        """Watch for ``seconds``: exactly ``owners`` hold the device all along."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.open_owners() == owners, f"{self.device.name}: {self.connections}"
            await asyncio.sleep(self._interval)

    async def _follow(self) -> None:
        while True:
            self._catch_up()
            await asyncio.sleep(self._interval)

    def _catch_up(self) -> None:
        events = self.device.events
        for at, kind, peer in events[self._seen :]:
            if kind == "open":
                self.connections.append(DeviceConnection(peer, at))
            else:
                opened = [c for c in self.connections if c.peer == peer and c.open]
                if opened:
                    opened[-1].closed = at
        self._seen = len(events)
        for connection in self.connections:
            if connection.open and connection.owner is None:
                client_port = int(connection.peer.rsplit(":", 1)[1])
                connection.owner = connection_owner(client_port, self.device.port, self._pids())
