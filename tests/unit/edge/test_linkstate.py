"""On connect the edge obeys control first, then catches up, which never drops the link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.edge.boot import EdgeBoot
from app.edge.controller import EdgeController
from app.edge.follower import ReplicaFollower, ReplicationFailure
from app.edge.forwarder import StatusForwarder
from app.edge.linkstate import LinkEvents
from app.edge.uplink import CurrentLink
from app.edge.witness import MasterWitness
from app.link import Control, Welcome
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


def linked(services: Services, replica: StuckReplica) -> Linked:
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
        Witness(services.http_client(), asker=settings.node_name, timeout=1.0),
        settings,
        services.store,
        controller,
        edge_id="edge-1",
    )
    events = LinkEvents(
        controller,
        witness,
        follower,
        services.repository,
        link_retry_s=settings.link_retry_s,
    )
    return Linked(events, controller, follower)


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
