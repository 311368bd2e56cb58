"""The room panel's files on a master, their cache headers, and what an edge lets it call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.routers.panel import MEDIA_TYPES, content_security_policy, origin_of
from app.settings import Settings
from tests.unit.routers.test_crud import create

MASTER_ORIGIN = "https://master.example:8443"


async def test_the_page_and_its_files_are_revalidated_at_every_use(api: httpx.AsyncClient) -> None:
    for name in MEDIA_TYPES:
        path = "/panel/" if name == "index.html" else f"/panel/{name}"
        response = await api.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(MEDIA_TYPES[name].split(";")[0])
        assert response.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in response.headers["content-security-policy"]
        again = await api.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        head = await api.head(path)
        assert head.content == b"" and int(head.headers["content-length"]) == len(response.content)
    assert (await api.get("/panel/nothing.js")).status_code == 404
    assert (await api.get("/panel/index.html")).status_code == 404
    moved = await api.get("/panel?system=sys-1")
    assert (moved.status_code, moved.headers["location"]) == (308, "/panel/?system=sys-1")


async def test_the_manifest_makes_the_panel_installable(api: httpx.AsyncClient) -> None:
    manifest = (await api.get("/panel/manifest.webmanifest")).json()
    assert manifest["start_url"] == manifest["scope"] == "/panel/"
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert (await api.get(icon["src"])).status_code == 200


async def test_the_page_may_connect_to_the_edges_only(api: httpx.AsyncClient) -> None:
    before = (await api.get("/panel/")).headers["etag"]
    await create(api, "/api/edges", {"name": "Sydney", "api_url": "https://sydney.example:8001/"})
    await create(api, "/api/edges", {"name": "No URL"})
    page = await api.get("/panel/", headers={"If-None-Match": before})
    assert page.status_code == 200, "another policy is another version of the page"
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self' https://sydney.example:8001 wss://sydney.example:8001;" in policy, (
        policy
    )
    assert "script-src" not in policy and "unsafe" not in policy


def test_origins_are_written_as_browsers_send_them() -> None:
    assert origin_of("HTTPS://Master.Example:443/api") == "https://master.example"
    assert origin_of("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert origin_of("http://[::1]:80") == "http://[::1]"
    assert content_security_policy([]).startswith("default-src 'self'; connect-src 'self';")


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An edge's application, not started: only what answers before boot is reached."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'edge.db'}",
        drivers_path=tmp_path / "drivers",
        edge_id="edge-1",
        edge_secret="secret",
        master_url=f"{MASTER_ORIGIN}/,https://standby.example",
        public_url="http://edge.test",
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
        yield http


async def test_an_edge_serves_no_panel(edge: httpx.AsyncClient) -> None:
    for path in ("/panel/", "/panel/sw.js", "/panel/manifest.webmanifest"):
        assert (await edge.get(path)).status_code == 404, path


async def test_an_edge_lets_the_masters_panel_call_what_it_needs(edge: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": MASTER_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key, prefer",
    }
    allowed = await edge.options("/api/systems/sys-1/exec", headers=preflight)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == MASTER_ORIGIN
    assert set(allowed.headers["access-control-allow-headers"].split(", ")) == {
        "content-type",
        "prefer",
        "x-api-key",
    }
    assert "access-control-allow-credentials" not in allowed.headers
    standby = {**preflight, "Origin": "https://standby.example"}
    assert (await edge.options("/api/systems/sys-1/servers", headers=standby)).status_code == 204

    # The answer itself names the origin (here a 503: the edge has not booted).
    answer = await edge.get("/api/systems/sys-1/state", headers={"Origin": MASTER_ORIGIN})
    assert answer.headers["access-control-allow-origin"] == MASTER_ORIGIN
    assert "Retry-After" in answer.headers["access-control-expose-headers"]

    # Nothing else: another method or header, another path, another origin.
    for path, headers in [
        ("/api/systems/sys-1/exec", {**preflight, "Access-Control-Request-Method": "DELETE"}),
        ("/api/systems/sys-1/exec", {**preflight, "Access-Control-Request-Headers": "cookie"}),
    ]:
        refused = await edge.options(path, headers=headers)
        assert "access-control-allow-origin" not in refused.headers, (path, headers)
    for path, origin in [
        ("/api/systems/sys-1/start", MASTER_ORIGIN),
        ("/api/systems/sys-1/keys", MASTER_ORIGIN),
        ("/api/edges", MASTER_ORIGIN),
        ("/api/systems/sys-1/exec", "https://elsewhere.example"),
    ]:
        other = await edge.options(path, headers={**preflight, "Origin": origin})
        assert "access-control-allow-origin" not in other.headers, (path, origin)


async def test_the_service_worker_keeps_every_file_the_page_loads(api: httpx.AsyncClient) -> None:
    """Every file the page and its manifest name is in the worker's list, and only those."""
    worker = (await api.get("/panel/sw.js")).text
    listed = json.loads(worker.split("const SHELL = ", 1)[1].split(";", 1)[0].replace(",\n]", "]"))
    served = {"/panel/" if name == "index.html" else f"/panel/{name}" for name in MEDIA_TYPES}
    assert set(listed) == served - {"/panel/sw.js"}
