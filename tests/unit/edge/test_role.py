"""The edge role on connect: control first, then the catch-up, which never drops the link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.edge.role import EdgeRole
from app.link import Control, Welcome
from app.node import Node
from app.settings import Settings


class StuckReplica:
    """A catch-up that hangs until released, or fails."""

    seq = 0

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


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[EdgeRole]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'edge.db'}",
        drivers_path=tmp_path / "drivers",
        edge_id="edge-1",
        master_url="http://127.0.0.1:9",
        edge_secret="edge-secret",
    )
    node = Node(settings)
    await node.store.open()
    role = EdgeRole(node)
    try:
        yield role
    finally:
        await node.store.close()


WELCOME = Welcome(proof="ab" * 32, master_booting=False, epoch=3)


async def test_the_edge_takes_control_before_a_slow_catch_up_ends(edge: EdgeRole) -> None:
    replica = StuckReplica()
    edge.replica = replica
    connecting = asyncio.create_task(
        edge.connected(object(), WELCOME, Control(controller="edge", epoch=3))  # type: ignore[arg-type]
    )
    await asyncio.wait_for(replica.started.wait(), 5)
    assert edge.control.controller == "edge" and edge.control.modules_running
    replica.release.set()
    await asyncio.wait_for(connecting, 5)


async def test_a_failing_catch_up_neither_raises_nor_undoes_control(edge: EdgeRole) -> None:
    edge.replica = StuckReplica(fail=True)
    await edge.connected(object(), WELCOME, Control(controller="edge", epoch=3))  # type: ignore[arg-type]
    assert edge.control.controller == "edge" and edge.control.modules_running
    assert edge._replica_changed.is_set(), "retried on the next change"
