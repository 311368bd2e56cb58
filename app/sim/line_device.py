"""A device speaking a newline-delimited text protocol over TCP (a display, a switcher).

It records every connection it sees, so tests can check what the engine did to it:
the high-availability tests assert that it never had two controllers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.sim.process import argument_parser, run

Reply = Callable[[str], str | None]

_POLL_INTERVAL_S = 0.005


def echo(line: str) -> str:
    return line


@dataclass(eq=False)
class _Client:
    peer: str
    writer: asyncio.StreamWriter
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class LineDevice:
    """Answers each received line with ``reply(line)`` and a newline (no answer for None).

    ``events`` holds ``(time.monotonic(), "open" | "close", peer)`` for every client
    connection, in the order the device saw them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "device",
        reply: Reply | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.received: list[str] = []
        self.events: list[tuple[float, str, str]] = []
        self._reply = reply if reply is not None else echo
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._max_concurrent = 0
        self._total_connections = 0

    @property
    def active_connections(self) -> int:
        return len(self._clients)

    @property
    def max_concurrent(self) -> int:
        """The most client connections ever open at the same time."""
        return self._max_concurrent

    @property
    def total_connections(self) -> int:
        return self._total_connections

    async def start(self) -> None:
        """Listen; ``port`` then holds the bound port, which a restart reuses."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self.port, ssl=self._tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await self.drop_clients()
        await server.wait_closed()

    async def drop_clients(self) -> None:
        """Close every client connection but keep listening, as a rebooting device would."""
        clients = list(self._clients)
        for client in clients:
            client.writer.close()
        await asyncio.gather(*(client.gone.wait() for client in clients))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds; raise ``TimeoutError`` after ``timeout``.

        Polls, so the predicate may look beyond the device (a client, another process).
        """
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - nothing to wait on for any predicate
                await asyncio.sleep(_POLL_INTERVAL_S)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = self._opened(writer)
        try:
            while line := await reader.readline():
                await self._answer(writer, line.decode(errors="replace").rstrip("\r\n"))
        except OSError:
            pass  # reset by the client: as good as closed
        finally:
            self._closed(client)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, writer: asyncio.StreamWriter, line: str) -> None:
        self.received.append(line)
        answer = self._reply(line)
        if answer is not None:
            writer.write(answer.encode() + b"\n")
            await writer.drain()

    def _opened(self, writer: asyncio.StreamWriter) -> _Client:
        host, port = writer.get_extra_info("peername")[:2]
        client = _Client(f"{host}:{port}", writer)
        self._clients.add(client)
        self._total_connections += 1
        self._max_concurrent = max(self._max_concurrent, len(self._clients))
        self.events.append((time.monotonic(), "open", client.peer))
        return client

    def _closed(self, client: _Client) -> None:
        self._clients.discard(client)
        self.events.append((time.monotonic(), "close", client.peer))
        client.gone.set()


def main() -> None:
    parser = argument_parser("A TCP device that answers every line with the same line.", "device")
    args = parser.parse_args()
    run(LineDevice(args.host, args.port, name=args.name), args.name)


if __name__ == "__main__":
    main()
