"""Health, readiness, metrics and the node header."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from app.main import compose, create_app
from app.settings import Settings
from tests.support.wait import wait_until


async def test_every_response_names_the_node(api: httpx.AsyncClient) -> None:
    for path in ("/api/health", "/api/edges", "/api/nowhere", "/metrics"):
        response = await api.get(path)
        assert response.headers["x-engine-node"] == "master", path
    missing = await api.get("/api/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_ready_after_boot(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_not_ready_before_boot(settings: Settings) -> None:
    node = compose(settings)
    app = create_app(settings, node=node)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/api/ready")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_metrics_count_requests(api: httpx.AsyncClient) -> None:
    await api.get("/api/edges")
    text = (await api.get("/metrics")).text
    assert 'engine_http_requests_total{method="GET",operation="listEdges",status="200"}' in text
    assert "engine_ready 1.0" in text


async def test_edge_role_names_itself(settings: Settings) -> None:
    edge_settings = settings.model_copy(
        update={"edge_id": "edge-1", "master_url": "http://127.0.0.1:9", "edge_secret": "s"}
    )
    node = compose(edge_settings)
    app = create_app(edge_settings, node=node)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/api/health")
    assert response.headers["x-engine-node"] == "edge:edge-1"


async def test_the_api_waits_for_boot(settings: Settings) -> None:
    node = compose(settings)
    app = create_app(settings, node=node)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/api/edges")
        health = await c.get("/api/health")
    assert response.status_code == 503
    assert "booting" in response.json()["detail"]
    assert response.headers["retry-after"]
    assert health.status_code == 200


async def start_echo(api: httpx.AsyncClient) -> str:
    driver = await api.post(
        "/api/drivers",
        json={"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"},
    )
    system = await api.post("/api/systems", json={"name": "Room"})
    module = await api.post(
        "/api/modules",
        json={"driver_id": driver.json()["id"], "name": "Echo", "system_id": system.json()["id"]},
    )
    assert module.status_code == 201, module.text
    return str(module.json()["id"])


async def test_ready_and_metrics_count_modules_running_now(api: httpx.AsyncClient) -> None:
    before = (await api.get("/api/ready")).json()
    assert before["modules_running"] == 0 and before["edges_connected"] == 0
    await start_echo(api)

    async def running() -> bool:
        return bool((await api.get("/api/ready")).json()["modules_running"] == 1)

    await wait_until(running, timeout=10, message="the module to run")
    assert "engine_modules_running 1.0" in (await api.get("/metrics")).text


async def test_metrics_pass_promtool(api: httpx.AsyncClient, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; make test-deps)")
    await start_echo(api)
    await api.get("/api/edges")
    await api.get("/api/nowhere")
    text = (await api.get("/metrics")).text
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in (
        "engine_http_requests_total",
        "engine_modules_running",
        "engine_replication_skipped_documents_total",
        "engine_tombstones_purged_total",
        "engine_control_events_pruned_total",
    ):
        assert f"\n{name}" in text, name


async def test_metrics_show_each_location_and_count_its_handovers(api: httpx.AsyncClient) -> None:
    edge = (await api.post("/api/edges", json={"name": "Away", "timeout": 0.2})).json()
    labels = f'edge_id="{edge["id"]}"'

    async def taken_over() -> bool:
        text = (await api.get("/metrics")).text
        return f'engine_location_controller{{controller="master",{labels}}} 1.0' in text

    await wait_until(taken_over, timeout=10, message="the failover of an edge never seen")
    text = (await api.get("/metrics")).text
    for line in (
        f"engine_location_online{{{labels}}} 0.0",
        f"engine_location_epoch{{{labels}}} 1.0",
        f"engine_location_failover_pending{{{labels}}} 0.0",
        f"engine_location_controlled_here{{{labels}}} 1.0",
        f"engine_location_failover_enabled{{{labels}}} 1.0",
        f'engine_handovers_total{{{labels},reason="failover",to="master"}} 1.0',
    ):
        assert line in text, line
    assert f"engine_location_seconds_since_decision{{{labels}}}" in text
    assert 'engine_build_info{python="' in text and 'role="master"' in text

    await api.post(f"/api/edges/{edge['id']}/takeover")  # already the master's: no handover
    assert (
        "engine_handovers_total{" + labels + ',reason="takeover"'
        not in (await api.get("/metrics")).text
    )


async def test_head_answers_wherever_get_does(api: httpx.AsyncClient) -> None:
    for path in ("/", "/api/health", "/api/ready", "/metrics", "/api/edges", "/api/status"):
        got, head = await api.get(path), await api.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["x-engine-node"] == "master"
    # A stream without end answers its head alone.
    stream = await api.head("/api/status/stream")
    assert (stream.status_code, stream.content) == (200, b"")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert (await api.head("/api/nowhere")).status_code == 404
    assert (await api.head("/api/edges", headers={"Authorization": ""})).status_code == 401
    text = (await api.get("/metrics")).text
    assert 'engine_http_requests_total{method="HEAD",operation="getHealth",status="200"}' in text
