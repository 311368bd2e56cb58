"""StatusBoard: what a server shows of its locations, and when a live view hears of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.errors import Unauthorized
from app.node import Node
from app.services.auth import Principal
from app.services.status import StatusBoard
from tests.unit.routers.test_crud import create

ADMIN = Principal("user-admin", "admin", admin=True)


def board(node: Node, edge_id: str | None = None, **options: Any) -> StatusBoard:
    return StatusBoard(
        node.store,
        node.catalog,
        lambda: node.control,
        node_name=f"edge:{edge_id}" if edge_id else "master",
        edge_id=edge_id,
        **options,
    )


async def test_an_edge_shows_only_its_own_location(api: httpx.AsyncClient, node: Node) -> None:
    here = await create(api, "/api/edges", {"name": "Here"})
    await create(api, "/api/edges", {"name": "Elsewhere"})
    await create(api, "/api/systems", {"name": "Room", "edge_control_id": here["id"]})
    await create(api, "/api/systems", {"name": "Lobby"})

    snapshot = await board(node, here["id"]).snapshot(ADMIN)

    assert [location["name"] for location in snapshot["locations"]] == ["Here"]
    assert snapshot["locations"][0]["systems"] == ["Room"]
    assert (snapshot["role"], snapshot["operations_here"], snapshot["master_systems"]) == (
        "edge",
        False,
        [],
    )


async def test_a_live_view_hears_changes_and_a_heartbeat(
    api: httpx.AsyncClient, node: Node
) -> None:
    async def admin() -> Principal:
        return ADMIN

    changes: AsyncIterator[dict[str, Any] | None] = board(node, poll_interval_s=0.01).changes(
        admin, heartbeat_s=0.05
    )
    first = await anext(changes)
    assert first is not None
    assert first["locations"] == []
    assert await anext(changes) is None  # nothing changed: a heartbeat

    await create(api, "/api/edges", {"name": "New"})
    while (snapshot := await anext(changes)) is None:
        pass
    assert [location["name"] for location in snapshot["locations"]] == ["New"]


async def test_a_live_view_ends_when_the_token_stops_being_valid(node: Node) -> None:
    await node.store.open()
    looks = 0

    async def revoked_after_one_look() -> Principal:
        nonlocal looks
        looks += 1
        if looks > 1:
            raise Unauthorized("the bearer token is not valid (unknown or revoked)")
        return ADMIN

    changes = board(node, poll_interval_s=0.01).changes(revoked_after_one_look)
    assert await anext(changes) is not None
    with pytest.raises(Unauthorized):
        await anext(changes)
    await node.store.close()
