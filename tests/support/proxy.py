"""A loopback TCP proxy that can partition the path it carries.

Point a client at :attr:`PausableProxy.port` instead of the real server. ``pause()``
makes the path a black hole: connections stay open but every byte, and every close,
is swallowed, so both ends see a half-open network and only their keepalives can tell.
A connection that lost anything in the partition has a broken byte stream, so
``resume()`` resets it, as the peer's TCP would once the network heals; connections
that lost nothing carry on. ``cut()`` closes everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass(eq=False)
class _Connection:
    """One client connection and, outside a partition, its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    #: Something was dropped: the byte stream can never be whole again.
    damaged: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()
        self.done.set()


class PausableProxy:
    """Forwards TCP connections from a loopback port to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._paused = False
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def __aenter__(self) -> PausableProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._handlers, *self._pumps, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def pause(self) -> None:
        """Partition: from now on nothing crosses, in either direction, not even a close."""
        self._paused = True

    def resume(self) -> None:
        """Heal: forward again, and reset the connections the partition broke."""
        self._paused = False
        for connection in [c for c in self._connections if c.damaged]:
            connection.close()

    def cut(self) -> None:
        """Close every connection now (both ends see the close)."""
        for connection in list(self._connections):
            connection.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        connection = _Connection(writer)
        self._connections.add(connection)
        try:
            if self._paused:
                # The connection attempt is lost in the partition: nothing reaches the target.
                connection.damaged = True
                self._pump(reader, None, connection)
            else:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
                connection.upstream = up_writer
                self._pump(reader, up_writer, connection)
                self._pump(up_reader, writer, connection)
            await connection.done.wait()
        except OSError:
            pass
        finally:
            connection.close()
            self._connections.discard(connection)
            self._handlers.discard(handler)

    def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter | None,
        connection: _Connection,
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(source, sink, connection))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _forward(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter | None,
        connection: _Connection,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(_CHUNK):
                if self._paused or sink is None:
                    connection.damaged = True
                    continue
                sink.write(data)
                await sink.drain()
        if self._paused or sink is None:
            connection.damaged = True  # the other end must not hear of this close yet
        else:
            connection.close()
