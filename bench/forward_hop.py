"""The floor under the REST proxy: a forwarding hop with no framework at all.

``python -m bench.forward_hop UPSTREAM_PORT`` listens on a free loopback port, prints
it, and relays every HTTP/1.1 connection to the upstream port on a connection of its
own: requests and responses are parsed with ``httptools`` (to know where each one
ends) and their bytes passed on unchanged, on uvloop like the servers. What a proxied
call costs beyond this hop is what the master's proxy adds over forwarding as such.
"""

from __future__ import annotations

import asyncio
import sys

import httptools

from app.node_process import HOST
from bench.support import run


class _Upstream(asyncio.Protocol):
    """The hop's connection to the upstream: response bytes go back to the client."""

    def __init__(self, client: asyncio.Transport) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)
        self._client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()


class _Client(asyncio.Protocol):
    """One client connection: its request bytes go to the upstream."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._parser = httptools.HttpRequestParser(self)
        self._upstream: _Upstream | None = None
        self._waiting: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client: asyncio.Transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect(client))

    async def _connect(self, client: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(
            lambda: _Upstream(client), HOST, self._upstream_port
        )
        self._upstream = upstream
        for data in self._waiting:
            self._forward(data)
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)
        if self._upstream is None:
            self._waiting.append(data)
        else:
            self._forward(data)

    def _forward(self, data: bytes) -> None:
        assert self._upstream is not None and self._upstream.transport is not None
        self._upstream.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upstream is not None and self._upstream.transport is not None:
            self._upstream.transport.close()


async def main(upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), HOST, 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    run(main(int(sys.argv[1])))
