"""Garbage on the master's websockets, over real sockets: the control link and the client API.

Hypothesis generates the garbage: text that is not JSON, binary frames, JSON of every
shape, and frames or requests with the right shape but wrong types, unknown ops and
commands. The master must answer each as DESIGN §4 and §6 say (an error reply, or for
a bad handshake a close with 4401 and no detail), keep the connection open when the
handshake is done, never crash, and keep serving a well-behaved edge and client while
it happens. The expected reply of each frame comes from the protocol's own parsers,
which have unit tests of their own; here the question is what the server does with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.link import CLOSE_AUTH_FAILED, CLOSE_TOO_LARGE, FrameError, Request, decode
from app.routers import client_protocol
from app.routers.client_ws import CLOSE_UNAUTHORIZED
from tests.integration.sites import TOKEN, Site, open_site
from tests.support.garbage import client_messages, link_frames
from tests.support.link_client import EdgeLink, RawLink, link_url, websocket_url

pytestmark = pytest.mark.integration

MAX_FRAME = 1 << 20
OVERSIZED = "x" * (MAX_FRAME + 1)

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- the master and its well-behaved peers --------------------------------------------


@dataclass
class Master:
    """The master under test and what it holds: an Echo module in a system it runs itself,
    and two edge locations that only the test plays, the good one with an Echo module."""

    site: Site
    system_id: str
    module_id: str
    good_edge: dict[str, Any]
    good_module_id: str
    fuzzed_edge: dict[str, Any]

    @property
    def url(self) -> str:
        return self.site.master.url

    async def assert_serving(self) -> None:
        self.site.master.check_alive()
        response = await self.site.http.get("/api/health")
        assert response.status_code == 200, response.text


@pytest.fixture
async def master(tmp_path: Any) -> AsyncIterator[Master]:
    async with open_site(tmp_path, ENGINE_REQUEST_TIMEOUT_S="2") as site:
        driver = await site.post(
            "/api/drivers",
            {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"},
        )

        async def echo_system(**location: str) -> tuple[str, str]:
            system = await site.post("/api/systems", {"name": "Room", **location})
            module = await site.post(
                "/api/modules",
                {"driver_id": driver["id"], "name": "Echo", "system_id": system["id"]},
            )
            return system["id"], module["id"]

        good = await site.post("/api/edges", {"name": "good", "failover": False})
        fuzzed = await site.post("/api/edges", {"name": "fuzzed", "failover": False})
        system_id, module_id = await echo_system()
        _, good_module_id = await echo_system(edge_control_id=good["id"])
        yield Master(site, system_id, module_id, good, good_module_id, fuzzed)


@pytest.fixture
async def good_edge(master: Master) -> AsyncIterator[EdgeLink]:
    edge = master.good_edge
    async with EdgeLink.open(
        master.url, edge["id"], edge["secret"], tls=master.site.tls.client()
    ) as link:
        yield link


@pytest.fixture
async def fuzzed_link(master: Master) -> AsyncIterator[RawLink]:
    edge = master.fuzzed_edge
    async with RawLink.open(
        master.url, edge["id"], edge["secret"], tls=master.site.tls.client()
    ) as link:
        yield link


# --- the control link -----------------------------------------------------------------


def expected_link_reply(frame: str | bytes) -> tuple[str, Any]:
    """What the master owes a frame after the handshake: ("response", id), ("error", code)
    or ("nothing", None)."""
    try:
        decoded = decode(frame, max_size=MAX_FRAME)
    except FrameError as error:
        if error.request_id is not None:
            return "response", error.request_id
        return "error", error.code
    if isinstance(decoded, Request):
        return "response", decoded.id
    if decoded.type in ("event", "response"):
        return "nothing", None
    return "error", "unexpected_frame"


@FUZZ
@given(frame=link_frames)
async def test_garbage_after_the_handshake_is_answered_and_the_link_stays(
    frame: str | bytes, master: Master, good_edge: EdgeLink, fuzzed_link: RawLink
) -> None:
    kind, detail = expected_link_reply(frame)
    received = await fuzzed_link.exchange(frame, answer_to=detail if kind == "response" else None)

    for message in received:
        decode(json.dumps(message), max_size=MAX_FRAME)  # the master only sends valid frames
    if kind == "error":
        errors = [m for m in received if m.get("type") == "event" and m.get("event") == "error"]
        assert [e["code"] for e in errors] == [detail], received
    elif kind == "response":
        [answer] = [m for m in received if m.get("type") == "response" and m.get("id") == detail]
        assert answer["ok"] or answer["error"]["code"], answer
    assert (await good_edge.changes_since(0))["changes"]
    await master.assert_serving()


CROSS_LOCATION_STATUS = (
    "the master takes status events for any module from any edge (app/master/role.py "
    "_on_event: no check that module_id lies in the sending edge's location)"
)


async def test_an_edge_cannot_set_the_status_of_another_locations_module(
    master: Master, good_edge: EdgeLink, fuzzed_link: RawLink
) -> None:
    state_url = f"/api/modules/{master.good_module_id}/state"
    before = (await master.site.http.get(state_url)).json()
    forged = {"type": "event", "event": "status", "module_id": master.good_module_id}
    await fuzzed_link.exchange(json.dumps({**forged, "name": "power", "value": "forged"}))

    assert (await master.site.http.get(state_url)).json() == before


peers = itertools.count()


def peer_address() -> str:
    """A fresh loopback source address: failed handshakes are throttled per peer address."""
    number = next(peers)
    return f"127.1.{number // 250}.{number % 250 + 1}"


async def refused(url: str, frame: str | bytes, **connect_options: Any) -> ConnectionClosed:
    """Send ``frame`` where the hello belongs; the close that follows."""
    async with connect(url, local_addr=(peer_address(), 0), **connect_options) as websocket:
        challenge = json.loads(await websocket.recv())
        assert challenge["type"] == "challenge"
        await websocket.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
        return closed.value


@FUZZ
@given(frame=link_frames)
async def test_garbage_instead_of_a_hello_is_refused_without_detail(
    frame: str | bytes, master: Master, good_edge: EdgeLink
) -> None:
    closed = await refused(link_url(master.url), frame, ssl=master.site.tls.client())

    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (CLOSE_AUTH_FAILED, "")
    assert (await good_edge.changes_since(0))["changes"]
    await master.assert_serving()


# --- the client websocket -------------------------------------------------------------


class Client:
    """A client of ``WS /api/ws``: sends requests, collects what comes back."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    @classmethod
    @asynccontextmanager
    async def open(cls, master: Master) -> AsyncIterator[Client]:
        async with connect(
            websocket_url(master.url, "/api/ws"),
            additional_headers={"Authorization": f"Bearer {TOKEN}"},
            ssl=master.site.tls.client(),
        ) as websocket:
            yield cls(websocket)

    async def send(self, message: str | bytes | dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(message) if isinstance(message, dict) else message)

    async def collect(
        self, satisfied: Callable[[list[Any]], bool], *, timeout: float = 5.0
    ) -> list[Any]:
        """Messages (parsed, but ``"pong"`` as is) until ``satisfied`` holds for them."""
        received: list[Any] = []
        async with asyncio.timeout(timeout):
            while not satisfied(received):
                text = await self.websocket.recv()
                received.append(text if text == client_protocol.PONG else json.loads(text))
        return received


def replies(received: list[Any], request_id: Any) -> list[dict[str, Any]]:
    return [
        m
        for m in received
        if isinstance(m, dict)
        and m.get("type") in ("success", "error")
        and m.get("id") == request_id
    ]


def answered(received: list[Any], expected: Any) -> bool:
    """Whether ``expected`` (a request id, or ``"pong"``) has its reply in ``received``."""
    if expected == client_protocol.PONG:
        return client_protocol.PONG in received
    return bool(replies(received, expected))


def expected_client_reply(message: str | bytes) -> Any:
    """The id the reply to ``message`` carries (``"pong"`` answers a ping)."""
    text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
    if text == client_protocol.PING:
        return client_protocol.PONG
    try:
        return client_protocol.parse_request(text).id
    except client_protocol.BadRequest as error:
        return error.request_id


class BoundClient:
    """A well-behaved client bound to the Echo module's ``value``: every call it makes to
    ``set`` must come back as a notification."""

    def __init__(self, client: Client, system_id: str) -> None:
        self.client = client
        self.system_id = system_id
        self.calls = itertools.count()

    async def bind(self) -> None:
        request = {
            "id": "bind",
            "cmd": "bind",
            "sys": self.system_id,
            "mod": "Echo",
            "name": "value",
        }
        await self.client.send(request)
        received = await self.client.collect(lambda r: answered(r, "bind"))
        assert replies(received, "bind")[0]["type"] == "success", received

    async def assert_notified(self) -> None:
        value = next(self.calls)
        call_id = f"set-{value}"
        await self.client.send(
            {
                "id": call_id,
                "cmd": "exec",
                "sys": self.system_id,
                "mod": "Echo",
                "name": "set",
                "args": ["value", value],
            }
        )

        def notified(received: list[Any]) -> bool:
            return answered(received, call_id) and any(
                m.get("type") == "notify" and m["value"] == value
                for m in received
                if isinstance(m, dict)
            )

        await self.client.collect(notified)


@pytest.fixture
async def bound_client(master: Master) -> AsyncIterator[BoundClient]:
    async with Client.open(master) as client:
        bound = BoundClient(client, master.system_id)
        await bound.bind()
        yield bound


@pytest.fixture
async def fuzzed_client(master: Master) -> AsyncIterator[Client]:
    async with Client.open(master) as client:
        yield client


@FUZZ
@given(token=st.text())
async def test_a_client_without_a_valid_token_is_closed_with_4401(
    token: str, master: Master, bound_client: BoundClient
) -> None:
    assume(token.strip() != TOKEN)
    url = websocket_url(master.url, f"/api/ws?{urlencode({'token': token})}")
    async with connect(url, ssl=master.site.tls.client()) as websocket:
        assert await close_code(websocket) == CLOSE_UNAUTHORIZED

    await bound_client.assert_notified()
    await master.assert_serving()


@FUZZ
@given(data=st.data())
async def test_garbage_on_the_client_websocket_is_answered_and_the_socket_stays(
    data: st.DataObject, master: Master, fuzzed_client: Client, bound_client: BoundClient
) -> None:
    message = data.draw(client_messages(master.system_id, master.module_id), label="message")
    expected = expected_client_reply(message)
    probe_id = uuid.uuid4().hex
    probe = {
        "id": probe_id,
        "cmd": "exec",
        "sys": master.system_id,
        "mod": "Echo",
        "name": "echo",
        "args": [probe_id],
    }
    await fuzzed_client.send(message)
    await fuzzed_client.send(probe)
    received = await fuzzed_client.collect(
        lambda r: answered(r, probe_id) and answered(r, expected)
    )

    meta = {"sys": master.system_id, "mod": "Echo", "index": 1, "name": "echo"}
    assert replies(received, probe_id) == [
        {"id": probe_id, "type": "success", "value": probe_id, "meta": meta}
    ]
    if expected != client_protocol.PONG:
        reply = replies(received, expected)[0]
        if reply["type"] == "error":
            assert reply["code"] in range(7) and reply["msg"], reply  # 7: unexpected failure
    await bound_client.assert_notified()
    await master.assert_serving()


# --- frames over the size limit -------------------------------------------------------


async def close_code(websocket: ClientConnection) -> int | None:
    """Read until the server closes the connection; the code it closed with."""
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionClosed):
            async for _ in websocket:
                pass
    return websocket.close_code


async def closed_after(websocket: ClientConnection, message: str) -> int | None:
    await websocket.send(message)
    return await close_code(websocket)


async def test_frames_over_the_limit_close_only_their_own_connection(
    master: Master, good_edge: EdgeLink, fuzzed_link: RawLink, bound_client: BoundClient
) -> None:
    assert await closed_after(fuzzed_link.websocket, OVERSIZED) == CLOSE_TOO_LARGE
    before_hello = await refused(link_url(master.url), OVERSIZED, ssl=master.site.tls.client())
    assert before_hello.rcvd is not None and before_hello.rcvd.code == CLOSE_TOO_LARGE
    async with Client.open(master) as client:
        assert await closed_after(client.websocket, OVERSIZED) == CLOSE_TOO_LARGE

    assert (await good_edge.changes_since(0))["changes"]
    await bound_client.assert_notified()
    await master.assert_serving()
