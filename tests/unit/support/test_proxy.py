from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.proxy import PausableProxy

#: How long a test listens for bytes that must not arrive.
SILENCE_S = 0.2


class EchoServer:
    """Echoes every chunk; records how many connections reached it."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[PausableProxy, EchoServer]]:
    server = EchoServer()
    await server.start()
    proxy = PausableProxy(server.port)
    await proxy.start()
    yield proxy, server
    await proxy.close()
    await server.stop()


async def connect(proxy: PausableProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(2):
        return await reader.readexactly(len(data))


async def nothing_arrives(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1024), SILENCE_S)
    except TimeoutError:
        return True
    return False


async def test_forwards_both_ways(proxy: tuple[PausableProxy, EchoServer]) -> None:
    relay, server = proxy
    reader, writer = await connect(relay)

    assert await roundtrip(reader, writer, b"hello") == b"hello"
    assert server.connections == 1
    writer.close()


async def test_a_pause_swallows_data_and_the_heal_resets_the_broken_connection(
    proxy: tuple[PausableProxy, EchoServer],
) -> None:
    relay, _ = proxy
    reader, writer = await connect(relay)
    await roundtrip(reader, writer, b"before")

    relay.pause()
    writer.write(b"lost")
    assert await nothing_arrives(reader), "a partition lets nothing through"

    relay.resume()
    async with asyncio.timeout(2):
        assert await reader.read() == b"", "the broken connection is reset at the heal"


async def test_a_close_during_the_pause_does_not_cross(
    proxy: tuple[PausableProxy, EchoServer],
) -> None:
    relay, _ = proxy
    reader, writer = await connect(relay)
    await roundtrip(reader, writer, b"before")

    relay.pause()
    writer.write_eof()  # the echo server closes its side in turn, but the partition eats it
    assert await nothing_arrives(reader)
    assert relay.connections == 1
    writer.close()


async def test_a_connection_that_lost_nothing_survives_the_pause(
    proxy: tuple[PausableProxy, EchoServer],
) -> None:
    relay, _ = proxy
    reader, writer = await connect(relay)

    relay.pause()
    relay.resume()

    assert await roundtrip(reader, writer, b"after") == b"after"
    writer.close()


async def test_a_connection_opened_during_the_pause_never_reaches_the_target(
    proxy: tuple[PausableProxy, EchoServer],
) -> None:
    relay, server = proxy
    relay.pause()
    reader, writer = await connect(relay)
    writer.write(b"hello?")

    assert await nothing_arrives(reader)
    assert server.connections == 0
    relay.resume()
    async with asyncio.timeout(2):
        assert await reader.read() == b""
    assert server.connections == 0


async def test_cut_closes_every_connection(proxy: tuple[PausableProxy, EchoServer]) -> None:
    relay, _ = proxy
    first, second = await connect(relay), await connect(relay)
    await roundtrip(*first, b"1")
    await roundtrip(*second, b"2")

    relay.cut()

    async with asyncio.timeout(2):
        assert await first[0].read() == b""
        assert await second[0].read() == b""
    first[1].close()
    second[1].close()
