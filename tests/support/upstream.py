"""A real HTTP/1.1 server on loopback that answers what a test scripts and records requests.

For the reverse proxy's tests: it speaks over a real socket, so the proxy's own client
is exercised end to end, keep-alive included.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httptools


@dataclass
class Received:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Answer:
    """What the server writes back (after ``delay`` seconds)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    #: Send the body in chunks (Transfer-Encoding: chunked) instead of Content-Length.
    chunked: bool = False
    #: Close the connection once answered.
    close: bool = False

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
        given = dict(headers or {})
        named = {name.lower() for name in given}
        content_type = [] if "content-type" in named else [("Content-Type", "application/json")]
        return cls(status, [*content_type, *given.items()], json.dumps(body).encode())


class _Session(asyncio.Protocol):
    def __init__(self, server: Upstream) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current: Received | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections += 1

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._current = Received(self._parser.get_method().decode(), url.decode(), {})

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        self._current.headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._current.body += body

    def on_message_complete(self) -> None:
        assert self._current is not None
        self._server.received.append(self._current)
        asyncio.get_running_loop().create_task(self._answer(self._server.answer))

    async def _answer(self, answer: Answer) -> None:
        await asyncio.sleep(answer.delay)
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        reason = "OK" if answer.status < 400 else "Error"
        lines = [f"HTTP/1.1 {answer.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in answer.headers]
        if answer.chunked:
            lines.append("Transfer-Encoding: chunked")
            half = len(answer.body) // 2
            chunks = [answer.body[:half], answer.body[half:], b""]
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(answer.body)}")
            body = answer.body
        if answer.close:
            lines.append("Connection: close")
        if self._current is not None and self._current.method == "HEAD":
            body = b""
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if answer.close:
            transport.close()


class Upstream:
    """``async with Upstream() as upstream``: ``upstream.url``, ``answer``, ``received``."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.received: list[Received] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Upstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
