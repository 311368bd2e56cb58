"""What the scenarios share: servers as processes, the REST calls that set them up."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.node_process import NodeProcess, free_port

T = TypeVar("T")

TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: Links that notice a dead peer and retry quickly, so scenarios do not wait on defaults.
FAST_LINK = {
    "ENGINE_LINK_RETRY_S": "0.5",
    "ENGINE_PING_INTERVAL_S": "1",
    "ENGINE_BOOT_WAIT_S": "0.5",
}

ECHO_DRIVER = {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"}


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run on the event loop the servers use (uvloop when installed), like uvicorn does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class Api:
    """An admin client of one server's REST API."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=30.0)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def create(self, collection: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.http.post(f"/api/{collection}", json=body)
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, path: str, body: Mapping[str, Any]) -> None:
        (await self.http.patch(path, json=body)).raise_for_status()

    async def control(self, edge_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/edges/{edge_id}/control")
        response.raise_for_status()
        control: dict[str, Any] = response.json()
        return control

    async def controlled_by(self, edge_id: str, controller: str) -> bool:
        control = await self.control(edge_id)
        return bool(control["controller"] == controller and control["online"])


@dataclass(frozen=True, slots=True)
class EdgeRoom:
    """An edge location with one system holding one module."""

    edge_id: str
    secret: str
    system_id: str
    module_id: str


async def seed_edge_room(
    api: Api,
    *,
    driver: Mapping[str, Any],
    module: Mapping[str, Any],
    edge: Mapping[str, Any],
) -> EdgeRoom:
    driver_id = (await api.create("drivers", driver))["id"]
    created = await api.create("edges", {"name": "Bench site", **edge})
    system = await api.create("systems", {"name": "Room", "edge_control_id": created["id"]})
    placed = await api.create(
        "modules", {"driver_id": driver_id, "system_id": system["id"], **module}
    )
    return EdgeRoom(created["id"], created["secret"], system["id"], placed["id"])


def master_process(workdir: Path) -> NodeProcess:
    return NodeProcess("master", workdir, free_port(), {"ENGINE_ADMIN_TOKEN": TOKEN, **FAST_LINK})


def edge_process(
    workdir: Path, room: EdgeRoom, master_url: str, *, kind: type[NodeProcess] = NodeProcess
) -> NodeProcess:
    return kind(
        "edge",
        workdir,
        free_port(),
        {
            "ENGINE_EDGE_ID": room.edge_id,
            "ENGINE_EDGE_SECRET": room.secret,
            "ENGINE_MASTER_URL": master_url,
            **FAST_LINK,
        },
    )


async def started(process: NodeProcess) -> NodeProcess:
    """Start a server and wait until it answers ``/api/ready``."""
    await process.start()
    async with httpx.AsyncClient(timeout=5.0) as http:
        await process.wait_ready(http)
    return process
