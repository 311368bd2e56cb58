from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
import trustme

from app.runtime.transports import http_client

Serve = Callable[[ssl.SSLContext | None], Coroutine[Any, Any, str]]


async def answer_with_request_line_and_agent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A minimal HTTP server: the body is the request line and the User-Agent it got."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    request_line, *header_lines = head.split("\r\n")
    agents = [
        line.split(": ", 1)[1] for line in header_lines if line.lower().startswith("user-agent:")
    ]
    body = f"{request_line}|{','.join(agents)}".encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts a loopback HTTP(S) server and returns its base URL."""
    servers: list[asyncio.Server] = []

    async def serve(tls: ssl.SSLContext | None) -> str:
        server = await asyncio.start_server(
            answer_with_request_line_and_agent, "127.0.0.1", 0, ssl=tls
        )
        servers.append(server)
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/api"

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_sends_relative_requests_to_the_base_url_as_engine_driver(serve: Serve) -> None:
    base_url = await serve(None)

    async with http_client(base_url) as client:
        response = await client.get("status")

    assert response.text == "GET /api/status HTTP/1.1|engine-driver"


def test_bounds_every_wait() -> None:
    client = http_client("http://device.invalid", timeout=30.0)

    assert client.timeout == httpx.Timeout(30.0, connect=5.0)


def test_a_short_timeout_also_bounds_connecting() -> None:
    client = http_client("http://device.invalid", timeout=2.0)

    assert client.timeout == httpx.Timeout(2.0)


async def test_verifies_tls_with_the_given_context(
    serve: Serve, server_tls: ssl.SSLContext, authority: trustme.CA
) -> None:
    base_url = await serve(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async with http_client(base_url, verify=trusting) as client:
        response = await client.get("status")

    assert response.status_code == 200


async def test_refuses_an_untrusted_certificate_by_default(
    serve: Serve, server_tls: ssl.SSLContext
) -> None:
    base_url = await serve(server_tls)

    async with http_client(base_url) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("status")


async def test_can_skip_verification_for_self_signed_devices(
    serve: Serve, server_tls: ssl.SSLContext
) -> None:
    base_url = await serve(server_tls)

    async with http_client(base_url, verify=False) as client:
        response = await client.get("status")

    assert response.status_code == 200
