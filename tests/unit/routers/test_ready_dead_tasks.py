"""A background task that dies makes ``/api/ready`` answer 503 naming it, at any time."""

from __future__ import annotations

import httpx

from app.node import Node
from tests.support.wait import wait_until


async def test_a_dead_task_makes_ready_fail_naming_it(api: httpx.AsyncClient, node: Node) -> None:
    assert (await api.get("/api/ready")).status_code == 200

    async def watching() -> None:
        raise RuntimeError("the store's change feed ended")

    node.tasks.spawn(watching(), name="change watch")
    await wait_until(lambda: bool(node.tasks.dead), timeout=2, message="the death")

    response = await api.get("/api/ready")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["detail"] == (
        "background task died: 'change watch' (RuntimeError: the store's change feed "
        "ended); see the log for the traceback"
    )
    assert [task["task"] for task in body["dead_tasks"]] == ["change watch"]
    assert "engine_tasks_dead 1.0" in (await api.get("/metrics")).text
    assert (await api.get("/api/health")).status_code == 200, "the process still runs"
