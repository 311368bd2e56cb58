"""StatusBoard: what a server shows of its locations, and when a live view hears of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.errors import Unauthorized
from app.node import Node
from app.services.auth import Principal
from app.services.control import history
from app.services.status import StatusBoard, master_link
from tests.support.wait import wait_until
from tests.unit.routers.test_crud import create

ADMIN = Principal("user-admin", "admin", admin=True)


def board(node: Node, edge_id: str | None = None, **options: Any) -> StatusBoard:
    return StatusBoard(
        node.store,
        node.catalog,
        node.control,
        node_name=f"edge:{edge_id}" if edge_id else "master",
        edge_id=edge_id,
        **options,
    )


async def awaited_edge(api: httpx.AsyncClient, node: Node, name: str) -> dict[str, Any]:
    """A new edge location, once the master has recorded that it awaits its edge (the
    store has moved on by then)."""
    edge = await create(api, "/api/edges", {"name": name})

    async def recorded() -> bool:
        return bool(await history(node.store, edge["id"], 1))

    await wait_until(recorded, timeout=10, message=f"the decision about {name}")
    return edge


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


async def test_a_decision_reloads_only_its_own_location_history(
    api: httpx.AsyncClient, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    edges = [await awaited_edge(api, node, f"Site {n}") for n in range(3)]
    watched = board(node)
    await watched.snapshot(ADMIN)
    looked_up: list[dict[str, str] | None] = []
    find = node.store.find

    async def counting_find(doc_type: str, **options: Any) -> Any:
        if doc_type == "control_event":
            looked_up.append(options.get("where"))
        return await find(doc_type, **options)

    monkeypatch.setattr(node.store, "find", counting_find)
    event = {
        "edge_id": edges[1]["id"],
        "kind": "config",
        "reason": "r",
        "at": "2030-01-01T00:00:00",
    }
    await node.store.insert("evt-1", "control_event", event)

    snapshot = await watched.snapshot(ADMIN)

    assert looked_up == [{"edge_id": edges[1]["id"]}]
    shown = {location["id"]: location["events"] for location in snapshot["locations"]}
    assert shown[edges[1]["id"]][0]["id"] == "evt-1"
    assert [e["kind"] for e in shown[edges[0]["id"]]] == ["created"]
    assert [e["kind"] for e in shown[edges[2]["id"]]] == ["created"]


async def test_viewers_share_one_view_per_poll_interval(
    api: httpx.AsyncClient, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    await awaited_edge(api, node, "Site")
    watched = board(node, poll_interval_s=60)
    described = 0
    describe = node.control.describe

    async def counting_describe(edge: Any) -> dict[str, Any]:
        nonlocal described
        described += 1
        return await describe(edge)

    monkeypatch.setattr(node.control, "describe", counting_describe)
    reader = Principal("user-reader", "reader", admin=False)
    first = await watched.snapshot(ADMIN)
    second = await watched.snapshot(reader)

    assert described == 1
    assert first["locations"][0]["can_operate"] is True
    assert second["locations"][0]["can_operate"] is False
    assert second["user"]["id"] == "user-reader"


async def test_a_snapshot_says_how_often_it_keeps_alive_and_how_the_server_fares(
    api: httpx.AsyncClient, node: Node
) -> None:
    snapshot = await board(node, keepalive_s=2.5).snapshot(ADMIN)
    assert snapshot["keepalive_s"] == 2.5
    assert snapshot["health"]["store"]["writable"] is True
    assert snapshot["master_link"] is None  # the master has no master


def test_the_link_reports_its_own_state_when_it_can() -> None:
    link = {
        "connected": False,
        "error": "timed out",
        "error_at": "2030-01-01T00:00:05+00:00",
        "link_state": "refused",
        "master_alive": True,
        "link_state_since": "2030-01-01T00:00:01+00:00",
    }
    assert master_link(link, None, "http://m") == {
        "state": "refused",
        "master_alive": True,
        "since": "2030-01-01T00:00:01+00:00",
        "error": "timed out",
        "error_at": "2030-01-01T00:00:05+00:00",
        "master_url": "http://m",
    }


@pytest.mark.parametrize(
    ("error", "state", "alive"),
    [
        ("ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 8000)",
         "unreachable", False),
        ("timed out", "unreachable", False),
        ("the master refused this edge's proof: its ENGINE_EDGE_SECRET is wrong or revoked",
         "refused", True),
        ("SSLCertVerificationError: certificate verify failed", "tls", True),
        ("the link dropped (close code 1011)", "closed", None),
        ("InvalidStatus: server rejected WebSocket connection: HTTP 503", "closed", True),
    ],
)  # fmt: skip
def test_a_link_that_reports_only_its_error_is_read_from_its_words(
    error: str, state: str, alive: bool | None
) -> None:
    view = master_link({"connected": False, "error": error, "error_at": "t"}, None, None)
    assert (view["state"], view["master_alive"], view["error_at"]) == (state, alive, "t")
    assert view["since"] is None  # only a link that tracks its state knows since when
    up = master_link({"connected": True, "error": None}, None, None)
    assert (up["state"], up["master_alive"], up["since"], up["error"]) == ("up", True, None, None)


def test_a_closed_link_whose_master_does_not_answer_its_witness_is_unreachable() -> None:
    dropped = "2030-01-01T00:00:05+00:00"
    link = {"connected": False, "error": "the link dropped (close code 1011)", "error_at": dropped}
    witness = {"result": "unreachable", "checked_at": "2030-01-01T00:00:06+00:00"}
    view = master_link(link, {"witness": witness}, None)
    assert (view["state"], view["master_alive"]) == ("unreachable", False)
    # What the witness said before the link dropped proves nothing about now.
    earlier = {**witness, "checked_at": "2030-01-01T00:00:01+00:00"}
    assert master_link(link, {"witness": earlier}, None)["state"] == "closed"
