"""The master's placement of a request: where an edge's location is answered."""

from __future__ import annotations

import httpx
import pytest

from app.node import Node
from app.store.base import StoreUnavailable
from tests.support.wait import wait_until


async def url_of(node: Node, edge_id: str) -> str | None:
    return (await node.placement.placement(edge_id)).url


async def test_an_edge_url_follows_its_document_without_a_store_read_per_request(
    api: httpx.AsyncClient, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (
        await api.post("/api/edges", json={"name": "Site", "api_url": "http://a.test"})
    ).json()
    edge_id = created["id"]

    async def supervised() -> bool:
        return bool((await api.get("/api/ready")).json()["edges"] == 1)

    await wait_until(supervised, timeout=10, message="the master to supervise the edge")
    await api.patch(f"/api/edges/{edge_id}", json={"api_url": "http://b.test"})

    async def moved() -> bool:
        return await url_of(node, edge_id) == "http://b.test"

    await wait_until(moved, timeout=10, message="the placement to follow the edge's document")

    async def unreadable(doc_id: str) -> None:
        raise StoreUnavailable("no reads on the request path")

    monkeypatch.setattr(node.store, "get", unreadable)
    assert await url_of(node, edge_id) == "http://b.test"
