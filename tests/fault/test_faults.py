"""Faults under load, with real processes on loopback.

Each scenario keeps clients busy while a fault strikes: the edge or the master is
killed with SIGKILL, or the database file becomes unwritable. Every request has a
client timeout and the checks are the same each time: no request hangs, every answer
is a success or a clear problem+json, and every write the API acknowledged is still
there afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.sites import TOKEN, Edge, Site, open_site
from tests.support.load import Load, Outcome, Send, sent_after
from tests.support.unwritable import immutable
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ECHO = {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"}
#: Deadline of a call through the link; clients give up only well after it.
REQUEST_TIMEOUT_S = 2.0
CLIENT_TIMEOUT_S = 8.0
#: How long the master waits for a killed edge before it takes over.
FAILOVER_TIMEOUT_S = 1.0
#: Transport errors that mean "refused or cut at once", never "left hanging".
CONNECTION_LOST = frozenset({"ConnectError", "ReadError", "WriteError", "RemoteProtocolError"})


async def call_echo(http: httpx.AsyncClient, system_id: str, value: Any) -> httpx.Response:
    return await http.post(
        f"/api/systems/{system_id}/exec",
        json={"module": "Echo", "method": "echo", "args": [value]},
    )


def exec_echo(system_id: str) -> Send:
    """Method calls: the system's Echo module echoes a new number per request."""
    values = itertools.count()

    async def send(http: httpx.AsyncClient) -> httpx.Response:
        return await call_echo(http, system_id, next(values))

    return send


def create_systems(prefix: str) -> Send:
    """Configuration writes: a new system per request, named ``prefix-<n>``."""
    numbers = itertools.count()

    async def send(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/api/systems", json={"name": f"{prefix}-{next(numbers)}"})

    return send


def acknowledged(outcomes: list[Outcome]) -> set[str]:
    """The names of the systems the API said it created."""
    return {
        o.response.json()["name"] for o in outcomes if o.response is not None and o.status == 201
    }


async def stored(http: httpx.AsyncClient, prefix: str) -> set[str]:
    """The names of the stored systems that start with ``prefix``, read page by page."""
    names: set[str] = set()
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        response = await http.get("/api/systems", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        names.update(item["name"] for item in page["items"] if item["name"].startswith(prefix))
        after = page["next"]
        if after is None:
            return names


def assert_answered_clearly(
    outcomes: list[Outcome], *, statuses: set[int], errors: frozenset[str] = frozenset()
) -> None:
    """No request hung; each got one of ``statuses`` (problem+json when an error) or was
    refused at once with one of ``errors``."""
    assert outcomes, "the load sent nothing"
    for outcome in outcomes:
        assert not outcome.timed_out, f"a request hung: {outcome.describe()}"
        if outcome.response is None:
            assert outcome.error in errors, f"unexpected transport error: {outcome.describe()}"
            continue
        assert outcome.status in statuses, f"unexpected answer: {outcome.describe()}"
        assert outcome.ok or outcome.is_problem, f"not a problem+json: {outcome.describe()}"


def api_client(base_url: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=CLIENT_TIMEOUT_S,
        limits=httpx.Limits(max_connections=20),
        **options,
    )


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path, ENGINE_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S)) as site:
        yield site


async def add_echo_edge(site: Site, **fields: Any) -> Edge:
    """An edge location running an Echo module, in control of it, reachable via the master."""
    edge = await site.add_edge("site", driver=ECHO, module={"name": "Echo"}, **fields)

    async def answers_through_master() -> bool:
        edge.process.check_alive()
        response = await call_echo(site.http, edge.system_id, "ready?")
        return response.status_code == 200

    await wait_until(answers_through_master, timeout=20, message="the edge's module to answer")
    return edge


# --- the edge dies ------------------------------------------------------------------


async def test_killing_the_edge_under_load_fails_calls_clearly_and_loses_no_data(
    site: Site,
) -> None:
    edge = await add_echo_edge(site, timeout=FAILOVER_TIMEOUT_S)
    async with api_client(site.master.url, verify=site.tls.client()) as http:
        async with (
            Load(
                http, exec_echo(edge.system_id), clients=4, client_timeout=CLIENT_TIMEOUT_S
            ) as calls,
            Load(
                http, create_systems("during"), clients=1, client_timeout=CLIENT_TIMEOUT_S
            ) as writes,
        ):
            await calls.wait_for_successes(20, what="calls before the kill")
            killed_at = time.monotonic()
            edge.process.kill()
            await calls.wait_for_successes(20, after=killed_at, what="calls after the takeover")
            await writes.wait_for_successes(5, after=killed_at, what="writes after the kill")

    assert_answered_clearly(calls.outcomes, statuses={200, 503, 504})
    failed = [o for o in sent_after(calls.outcomes, killed_at) if not o.ok]
    assert failed, "no call ever saw the edge gone"
    assert all(edge.id in o.response.json()["detail"] for o in failed if o.response), (
        "a failed call does not name the edge that controls the module"
    )
    assert_answered_clearly(writes.outcomes, statuses={201})
    written = acknowledged(writes.outcomes)
    assert await stored(site.http, "during-") == written

    # The edge comes back from its own replica and catches up with what it missed.
    edge.process.start()
    await edge.process.wait_ready()
    async with api_client(edge.process.url) as at_edge:

        async def replicated() -> bool:
            return await stored(at_edge, "during-") == written

        await wait_until(replicated, timeout=20, message="the edge's replica to catch up")


# --- the master dies ----------------------------------------------------------------


async def test_the_edge_serves_its_location_while_the_master_is_down_and_restarts(
    site: Site,
) -> None:
    edge = await add_echo_edge(site, timeout=30)
    master = site.master
    async with (
        api_client(master.url, verify=site.tls.client()) as via_master,
        api_client(edge.process.url) as at_edge,
    ):
        loads = (
            Load(at_edge, exec_echo(edge.system_id), clients=3, client_timeout=CLIENT_TIMEOUT_S),
            Load(via_master, exec_echo(edge.system_id), clients=2, client_timeout=CLIENT_TIMEOUT_S),
            Load(via_master, create_systems("durable"), clients=1, client_timeout=CLIENT_TIMEOUT_S),
        )
        async with contextlib.AsyncExitStack() as running:
            direct, through, writes = [await running.enter_async_context(load) for load in loads]
            await direct.wait_for_successes(10, what="calls at the edge")
            await through.wait_for_successes(10, what="calls through the master")
            await writes.wait_for_successes(3, what="writes")
            killed_at = time.monotonic()
            master.kill()
            # Long enough for the edge to see the link gone and fail to reconnect a few times.
            await direct.wait_for_successes(
                20, after=killed_at + 1.5, what="calls at the edge while the master is down"
            )
            master.start()
            await master.wait_ready(verify=site.tls.client())
            restarted_at = time.monotonic()
            await through.wait_for_successes(
                10, after=restarted_at, what="calls through the restarted master"
            )

    assert_answered_clearly(direct.outcomes, statuses={200})
    assert_answered_clearly(through.outcomes, statuses={200, 503, 504}, errors=CONNECTION_LOST)
    assert_answered_clearly(writes.outcomes, statuses={201, 503}, errors=CONNECTION_LOST)
    # A write cut off by the kill may or may not have been stored; an acknowledged one is.
    assert acknowledged(writes.outcomes) <= await stored(site.http, "durable-")


# --- the database file becomes unwritable ---------------------------------------------


@pytest.mark.parametrize(
    "suffixes",
    [
        pytest.param(("", "-wal"), id="database-and-wal"),
        pytest.param(("", "-wal", "-shm"), id="database-wal-and-shm"),
    ],
)
async def test_an_unwritable_database_refuses_writes_cleanly_and_recovers(
    site: Site, suffixes: tuple[str, ...]
) -> None:
    database = site.master.workdir / "engine.db"
    # No memory-mapped WAL index, whose loss would kill the server with SIGBUS.
    assert not database.with_name("engine.db-shm").exists()
    async with api_client(site.master.url, verify=site.tls.client()) as http:
        async with Load(
            http, create_systems("stream"), clients=2, client_timeout=CLIENT_TIMEOUT_S
        ) as writes:
            await writes.wait_for_successes(10, what="writes before the fault")
            files = [database.with_name(database.name + suffix) for suffix in suffixes]
            with immutable([path for path in files if path.exists()]):
                frozen_at = time.monotonic()

                def refused() -> bool:
                    site.master.check_alive()
                    return sum(o.status == 503 for o in sent_after(writes.outcomes, frozen_at)) >= 5

                await wait_until(refused, timeout=10, message="writes to be refused")
            thawed_at = time.monotonic()
            await writes.wait_for_successes(10, after=thawed_at, what="writes after the fault")

    assert_answered_clearly(writes.outcomes, statuses={201, 503})
    # Every acknowledged write is there, and no refused one left a document behind.
    assert await stored(site.http, "stream-") == acknowledged(writes.outcomes)
