"""The reverse proxy's HTTP client: pooled HTTP/1.1 keep-alive connections, parsed in C.

`ProxyClient` offers the part of ``httpx.AsyncClient`` the reverse proxy uses —
``build_request``, ``send``, ``aclose`` — and raises httpx's exceptions, so callers
written for httpx keep working. Per call it does what a forwarding hop must: write
the request head and body on an idle connection of the target's origin (or a new
one), parse the response with ``httptools`` as bytes arrive, and hand the connection
back once the response is complete. No cookie jar, no redirects, no auth, no event
hooks, no content decoding: measured side by side, one forwarded call costs a fourteenth
of what it costs through httpx (bench/README.md §8).

Bodies are read whole before `send` returns (the proxied endpoints answer small JSON),
into a plain ``httpx.Response`` whose ``aiter_raw`` yields them transfer-decoded and
still content-encoded, as httpx's own does. The reverse proxy calls `forward`, which
returns the same answer as a `ProxyResponse` of the bytes read, headers undecoded.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httptools
import httpx

_PATH_SAFE = "/!$&'()*+,;=:@"
_QUERY_SAFE = "/!$&'()*+,;=:@?%"


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """A request ready to be written: its origin and its bytes."""

    method: str
    url: str
    origin: tuple[str, str, int]
    data: bytes


@dataclass(frozen=True, slots=True)
class ProxyResponse:
    """A complete response as it came: header names and values as sent, the body
    transfer-decoded and still content-encoded."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def as_httpx(self) -> httpx.Response:
        return httpx.Response(
            self.status_code, headers=self.headers, stream=httpx.ByteStream(self.body)
        )


@dataclass(slots=True)
class _Exchange:
    """What the parser has seen of the response to the request in flight."""

    done: asyncio.Future[None]
    #: A response to HEAD ends with its head, whatever its Content-Length says.
    head_only: bool
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, reusable while kept alive."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._exchange: _Exchange | None = None
        self.usable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are no subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))

    def eof_received(self) -> bool | None:
        self.usable = False
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail(httpx.RemoteProtocolError("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._exchange is not None
        self._exchange.headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.head_only and not exchange.done.done():
            self.usable = False  # the parser would wait for the body HEAD has not
            exchange.done.set_result(None)

    def on_body(self, body: bytes) -> None:
        assert self._exchange is not None
        self._exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.done.done():
            if not self._parser.should_keep_alive():
                self.usable = False
            exchange.done.set_result(None)

    # the client's side
    async def exchange(self, request: ProxyRequest) -> ProxyResponse:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        exchange = self._exchange = _Exchange(loop.create_future(), request.method == "HEAD")
        self._transport.write(request.data)
        try:
            await exchange.done
        finally:
            self._exchange = None
        return ProxyResponse(
            self._parser.get_status_code(), exchange.headers, b"".join(exchange.body)
        )

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        self.usable = False
        exchange = self._exchange
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(exc)
        if self._transport is not None:
            self._transport.close()


class ProxyClient:
    """Forwards requests to other servers over pooled keep-alive connections.

    ``timeout`` bounds the wait for a whole response, ``connect_timeout`` opening a
    connection; at most ``max_connections`` requests are in flight at once (the others
    wait their turn within ``timeout``) and ``max_idle`` idle connections are kept per
    origin.
    """

    def __init__(
        self,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int = 200,
        max_idle: int = 50,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._tls = tls
        self._idle: defaultdict[tuple[str, str, int], list[_Connection]] = defaultdict(list)

    def build_request(
        self,
        method: str,
        url: str,
        *,
        params: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        content: bytes = b"",
    ) -> ProxyRequest:
        """The request's bytes: ``headers`` as given, plus Host and Content-Length."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot proxy to {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # As httpx writes them: a decoded path is percent-encoded again (UTF-8), a query
        # keeps its escapes and only what may not stand in a request line is encoded.
        target = quote(parts.path or "/", safe=_PATH_SAFE)
        query = "&".join(quote(q, safe=_QUERY_SAFE) for q in (parts.query, params) if q)
        if query:
            target += "?" + query
        lines = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if content or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(content)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return ProxyRequest(method, url, (parts.scheme, parts.hostname, port), head + content)

    async def send(self, request: ProxyRequest, *, stream: bool = False) -> httpx.Response:
        """The complete response; raises httpx's ``TimeoutException`` or ``HTTPError``."""
        return (await self.forward(request)).as_httpx()

    async def forward(self, request: ProxyRequest) -> ProxyResponse:
        """:meth:`send` without building an ``httpx.Response``: what a proxy relays."""
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                connection = await self._connection(request.origin)
                try:
                    response = await connection.exchange(request)
                except BaseException:
                    connection.close()
                    raise
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within {self._timeout:g} s") from None
        self._release(request.origin, connection)
        return response

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _connection(self, origin: tuple[str, str, int]) -> _Connection:
        idle = self._idle[origin]
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
        scheme, host, port = origin
        tls = (self._tls or ssl.create_default_context()) if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return connection

    def _release(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle[origin]
        if connection.usable and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()
