"""On connect the edge obeys control first, then catches up, which never drops the link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.edge.boot import EdgeBoot
from app.edge.controller import EdgeController
from app.edge.follower import ReplicaFollower, ReplicationFailure
from app.edge.forwarder import StatusForwarder
from app.edge.linkstate import LinkEvents
from app.edge.uplink import CurrentLink
from app.edge.witness import MasterWitness
from app.link import Control, LinkFailure, Welcome
from app.node import Services
from app.services.modules import Locations, ModuleService
from app.services.witness import Witness
from app.settings import Settings


class StuckReplica:
    """A catch-up that hangs until released, or fails."""

    seq = 0
    set_aside = None

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def open(self) -> None:
        pass

    async def catch_up(self, link: Any) -> int:
        self.started.set()
        if self.fail:
            raise RuntimeError("the master's answer could not be applied")
        await self.release.wait()
        return 0

    async def updated(self, link: Any, versions: Mapping[str, str | None]) -> list[str]:
        return []


@dataclass
class Linked:
    """The edge's link events over a replica whose catch-up the test holds."""

    events: LinkEvents
    controller: EdgeController
    follower: ReplicaFollower
    witness: MasterWitness


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'edge.db'}",
        drivers_path=tmp_path / "drivers",
        edge_id="edge-1",
        master_url="http://127.0.0.1:9",
        edge_secret="edge-secret",
    )
    services = Services(settings)
    await services.store.open()
    try:
        yield services
    finally:
        await services.close_clients()
        await services.store.close()


#: The retry delay of the tests that fail attempts: past it, an edge may run its modules.
RETRY_S = 0.01


def linked(
    services: Services,
    replica: StuckReplica,
    *,
    retry_s: float | None = None,
    http: httpx.AsyncClient | None = None,
) -> Linked:
    settings = services.settings
    modules = ModuleService(services.manager(), Locations(services.store))
    controller = EdgeController("edge-1", modules, StatusForwarder(lambda: None))
    boot = EdgeBoot(services, modules, replica, edge_id="edge-1")
    follower = ReplicaFollower(
        replica,
        CurrentLink(),
        boot.synced,
        ReplicationFailure(services.metrics),
        retry_max_s=settings.link_retry_s,
    )
    witness = MasterWitness(
        Witness(http or services.http_client(), asker=settings.node_name, timeout=1.0),
        settings,
        services.store,
        controller,
        CurrentLink(),
        edge_id="edge-1",
    )
    events = LinkEvents(
        controller,
        witness,
        follower,
        services.repository,
        services.metrics,
        link_retry_s=retry_s or settings.link_retry_s,
    )
    return Linked(events, controller, follower, witness)


WELCOME = Welcome(proof="ab" * 32, master_booting=False, epoch=3)


async def test_the_edge_takes_control_before_a_slow_catch_up_ends(services: Services) -> None:
    replica = StuckReplica()
    edge = linked(services, replica)
    connecting = asyncio.create_task(
        edge.events.connected(object(), WELCOME, Control(controller="edge", epoch=3))  # type: ignore[arg-type]
    )
    await asyncio.wait_for(replica.started.wait(), 5)
    assert edge.controller.state.controller == "edge" and edge.controller.modules_running
    replica.release.set()
    await asyncio.wait_for(connecting, 5)


async def test_a_failing_catch_up_neither_raises_nor_undoes_control(services: Services) -> None:
    edge = linked(services, StuckReplica(fail=True))
    await edge.events.connected(object(), WELCOME, Control(controller="edge", epoch=3))  # type: ignore[arg-type]
    assert edge.controller.state.controller == "edge" and edge.controller.modules_running
    assert edge.follower.retrying, "retried in the background"
    failure = edge.follower.failure.as_json()
    assert failure is not None and failure["retries"] == 0, failure
    assert "could not be applied" in failure["error"]


def link_state_metric(services: Services) -> dict[str, float]:
    return {
        sample.labels["state"]: sample.value
        for metric in services.metrics.link_state.collect()
        for sample in metric.samples
    }


@pytest.mark.parametrize(
    "failure",
    [
        LinkFailure("tls", "the master's certificate is not trusted: certificate has expired"),
        LinkFailure("refused", "the master answered the link with HTTP 503"),
        LinkFailure("refused", "the master refused this process as a duplicate", duplicate=True),
    ],
)
async def test_a_failure_the_master_answered_never_starts_the_modules(
    services: Services, failure: LinkFailure
) -> None:
    edge = linked(services, StuckReplica(), retry_s=RETRY_S)
    await asyncio.sleep(2 * RETRY_S)  # past the retry delay: an unanswered attempt would start them
    await edge.events.attempt_failed(failure)
    assert not edge.controller.modules_running
    report = edge.events.report
    assert (report.state, report.master_alive, report.error) == (
        failure.kind,
        True,
        failure.detail,
    )
    assert link_state_metric(services) == {
        "up": 0,
        "closed": 0,
        "refused": 1 if failure.kind == "refused" else 0,
        "tls": 1 if failure.kind == "tls" else 0,
        "unreachable": 0,
    }


async def test_an_attempt_nobody_answered_starts_them_after_the_retry_delay(
    services: Services,
) -> None:
    edge = linked(services, StuckReplica(), retry_s=RETRY_S)
    await asyncio.sleep(2 * RETRY_S)
    await edge.events.attempt_failed(LinkFailure("unreachable", "timed out"))
    assert edge.controller.modules_running
    assert edge.events.report.state == "unreachable"
    assert edge.witness.report is not None and edge.witness.report.result == "unreachable"


async def test_a_duplicate_refusal_stops_running_modules(services: Services) -> None:
    edge = linked(services, StuckReplica(), retry_s=RETRY_S)
    await asyncio.sleep(2 * RETRY_S)
    await edge.events.attempt_failed(LinkFailure("unreachable", "timed out"))
    assert edge.controller.modules_running
    await edge.events.attempt_failed(LinkFailure("refused", "duplicate", duplicate=True))
    assert not edge.controller.modules_running


@pytest.mark.parametrize(("master_had_them", "starts"), [(False, True), (True, False)])
async def test_with_failover_off_an_edge_the_master_refuses_runs_what_the_master_does_not(
    services: Services, master_had_them: bool, starts: bool
) -> None:
    await services.store.upsert("edge-1", "edge", {"name": "Sydney", "failover": False})
    controller = "master" if master_had_them else "edge"
    await services.store.upsert("control::edge-1", "control_state", {"controller": controller})
    edge = linked(services, StuckReplica(), retry_s=RETRY_S)
    await asyncio.sleep(2 * RETRY_S)
    await edge.events.attempt_failed(LinkFailure("tls", "certificate has expired"))
    assert edge.controller.modules_running == starts
    assert edge.events.report.state == "tls"


@pytest.mark.parametrize(("last_word", "starts"), [("master", False), ("edge", True)])
async def test_a_master_that_asks_this_edge_while_it_holds_the_devices_is_no_outage(
    services: Services, last_word: str, starts: bool
) -> None:
    await services.store.upsert("control::edge-1", "control_state", {"controller": last_word})
    edge = linked(services, StuckReplica(), retry_s=RETRY_S)
    edge.witness.master_asked(controls=False)  # its question came in; ours to it go nowhere
    await asyncio.sleep(2 * RETRY_S)
    await edge.events.attempt_failed(LinkFailure("unreachable", "timed out"))
    assert edge.controller.modules_running == starts


async def test_a_witness_that_refuses_the_question_proves_the_master_there(
    services: Services,
) -> None:
    async def refuse(request: Request) -> Response:
        return JSONResponse({"detail": "the question's proof is wrong"}, status_code=401)

    master = Starlette(routes=[Route("/api/edges/{edge_id}/witness", refuse)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=master)) as http:
        edge = linked(services, StuckReplica(), retry_s=RETRY_S, http=http)
        await asyncio.sleep(2 * RETRY_S)
        # The link's attempt timed out, but the master answers at its API: it is there.
        await edge.events.attempt_failed(LinkFailure("unreachable", "timed out"))
    assert edge.witness.report is not None and edge.witness.report.result == "refused"
    assert not edge.controller.modules_running
