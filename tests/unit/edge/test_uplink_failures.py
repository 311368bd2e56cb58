"""The uplink classifies its failed attempts as real sockets make them fail."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from app.edge.uplink import CurrentLink, HelloFacts, Uplink
from app.link import Control, LinkConnection, LinkFailure, Welcome
from app.node_process import free_port
from app.settings import Settings
from tests.support.tls import expired_server

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FirstFailure:
    """An ``UplinkListener`` that keeps the first failed attempt."""

    def __init__(self) -> None:
        self.failure: asyncio.Future[LinkFailure] = asyncio.get_running_loop().create_future()

    def hello_facts(self) -> HelloFacts:
        return HelloFacts(devices_loaded=False, replica_seq=0, commit=None)

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None:
        raise AssertionError("no link was expected")

    async def disconnected(self, reason: str) -> None:
        pass

    async def attempt_failed(self, failure: LinkFailure) -> None:
        if not self.failure.done():
            self.failure.set_result(failure)


async def first_failure(master_url: str, tmp_path: Path, ca: Path | None = None) -> LinkFailure:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'edge.db'}",
        edge_id="edge-1",
        edge_secret="edge-secret",
        master_url=master_url,
        tls_ca=ca,
        link_retry_s=0.05,
    )
    listener = FirstFailure()
    uplink = Uplink(
        settings,
        current=CurrentLink(),
        handlers={},
        on_event=lambda event: None,
        listener=listener,
        boot_time=0.0,
    )
    running = asyncio.create_task(uplink.run_forever())
    try:
        return await asyncio.wait_for(listener.failure, 10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def test_an_expired_certificate_is_a_tls_failure(tmp_path: Path) -> None:
    authority, server_tls = expired_server()
    ca = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"")

    async with serving(handler, server_tls) as port:
        failure = await first_failure(f"https://127.0.0.1:{port}", tmp_path, ca)
    assert (failure.kind, failure.master_alive) == ("tls", True)
    assert "certificate has expired" in failure.detail


async def test_a_certificate_of_an_unknown_authority_is_a_tls_failure(tmp_path: Path) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_tls)
    ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"")

    async with serving(handler, server_tls) as port:
        failure = await first_failure(f"https://127.0.0.1:{port}", tmp_path, ca)
    assert failure.kind == "tls", failure


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\nX-Engine-Node: master\r\nContent-Length: 0\r\n\r\n",
            "refused",
        ),
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "refused"),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "unreachable"),
        (b"", "unreachable"),
    ],
)
async def test_an_http_answer_is_a_refusal_unless_a_gateway_says_nobody_answers(
    tmp_path: Path, head: bytes, kind: str
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, head)

    async with serving(handler) as port:
        failure = await first_failure(f"http://127.0.0.1:{port}", tmp_path)
    assert failure.kind == kind, failure


async def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    failure = await first_failure(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert (failure.kind, failure.master_alive) == ("unreachable", False)
