"""The reverse proxy's client against a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.node_process import free_port
from app.proxy_client import ProxyClient
from tests.support.upstream import Answer, Upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[ProxyClient]:
    proxy = ProxyClient(timeout=1.0, connect_timeout=1.0)
    yield proxy
    await proxy.aclose()


async def body_of(client: ProxyClient, method: str, url: str, content: bytes = b"") -> bytes:
    response = await client.send(client.build_request(method, url, content=content), stream=True)
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()


async def test_requests_carry_host_query_and_length_and_answers_their_headers(
    client: ProxyClient, upstream: Upstream
) -> None:
    upstream.answer = Answer.json(201, {"ok": True}, {"X-Engine-Node": "edge:e1"})
    request = client.build_request(
        "PUT", upstream.url + "/a/b?x=1", params="y=2", headers=[("X-Test", "v")], content=b"{}"
    )
    response = await client.send(request, stream=True)

    assert response.status_code == 201
    assert "x-engine-node" in response.headers and "X-Engine-Node" in response.headers
    assert ("x-engine-node", "edge:e1") in response.headers.multi_items()
    [sent] = upstream.received
    assert (sent.method, sent.path, sent.body) == ("PUT", "/a/b?x=1&y=2", b"{}")
    assert sent.headers["host"] == upstream.url.removeprefix("http://")
    assert sent.headers["x-test"] == "v"
    assert sent.headers["content-length"] == "2"


async def test_a_connection_the_server_closed_is_not_reused(
    client: ProxyClient, upstream: Upstream
) -> None:
    upstream.answer = Answer(200, body=b"first", close=True)
    assert await body_of(client, "GET", upstream.url + "/") == b"first"
    upstream.answer = Answer(200, body=b"second")
    assert await body_of(client, "GET", upstream.url + "/") == b"second"
    assert await body_of(client, "GET", upstream.url + "/") == b"second"

    assert upstream.connections == 2


async def test_a_head_answer_ends_with_its_head(client: ProxyClient, upstream: Upstream) -> None:
    upstream.answer = Answer(200, body=b"x" * 99)  # Content-Length: 99, no body for HEAD

    assert await body_of(client, "HEAD", upstream.url + "/") == b""


async def test_failures_are_httpx_errors(client: ProxyClient, upstream: Upstream) -> None:
    with pytest.raises(httpx.ConnectError):
        await body_of(client, "GET", f"http://127.0.0.1:{free_port()}/")
    upstream.answer = Answer(200, delay=2.0)
    with pytest.raises(httpx.ReadTimeout):
        await body_of(client, "GET", upstream.url + "/")
    with pytest.raises(httpx.UnsupportedProtocol):
        client.build_request("GET", "ftp://example.test/")


async def test_requests_beyond_the_connection_cap_wait_their_turn(upstream: Upstream) -> None:
    capped = ProxyClient(timeout=2.0, connect_timeout=1.0, max_connections=2)
    upstream.answer = Answer(200, body=b"ok", delay=0.05)
    try:
        bodies = await asyncio.gather(
            *(body_of(capped, "GET", upstream.url + "/") for _ in range(4))
        )
    finally:
        await capped.aclose()

    assert bodies == [b"ok"] * 4
    assert upstream.connections == 2


def test_a_decoded_path_is_encoded_again_and_a_query_keeps_its_escapes() -> None:
    client = ProxyClient(timeout=1.0, connect_timeout=1.0)

    request = client.build_request(
        "GET", "http://edge.test/api/modules/é 1%/state", params="a=%41 b"
    )

    assert request.data.startswith(b"GET /api/modules/%C3%A9%201%25/state?a=%41%20b HTTP/1.1\r\n")
