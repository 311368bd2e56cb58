"""The status page, its snapshot endpoint and the offline API docs, in process."""

from __future__ import annotations

import re

import httpx

from app.routers.docs import CONTENT_SECURITY_POLICY
from tests.unit.routers.test_crud import assert_problem, create
from tests.unit.routers.test_users import issue


async def test_the_page_and_its_assets_come_from_the_server(api: httpx.AsyncClient) -> None:
    page = await api.get("/", headers={"Authorization": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert set(assets) >= {"/status-assets/status.js", "/status-assets/status.css"}
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the app"
        assert (await api.get(asset, headers={"Authorization": ""})).status_code == 200


async def test_the_snapshot_needs_a_token(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/api/status", headers={"Authorization": ""}), 401)
    assert_problem(await api.get("/api/status/stream", headers={"Authorization": ""}), 401)


async def test_the_snapshot_shows_each_location_and_who_may_operate_it(
    api: httpx.AsyncClient,
) -> None:
    tech = await create(api, "/api/users", {"name": "Tech"})
    mine = await create(api, "/api/edges", {"name": "Mine", "admins": [tech["id"]]})
    other = await create(api, "/api/edges", {"name": "Other", "timezone": "Australia/Sydney"})
    await create(api, "/api/systems", {"name": "Room", "edge_control_id": mine["id"]})
    await create(api, "/api/systems", {"name": "Lobby"})

    snapshot = (await api.get("/api/status")).json()
    assert (snapshot["node"], snapshot["role"], snapshot["operations_here"]) == (
        "master",
        "master",
        True,
    )
    assert snapshot["master_systems"] == ["Lobby"]
    by_name = {location["name"]: location for location in snapshot["locations"]}
    assert by_name["Mine"]["systems"] == ["Room"]
    assert by_name["Other"]["timezone"] == "Australia/Sydney"
    assert by_name["Mine"]["control"]["edge_id"] == mine["id"]
    assert all(location["can_operate"] for location in by_name.values())

    as_tech = {"Authorization": f"Bearer {await issue(api, tech['id'])}"}
    seen = (await api.get("/api/status", headers=as_tech)).json()
    allowed = {location["id"]: location["can_operate"] for location in seen["locations"]}
    assert allowed == {mine["id"]: True, other["id"]: False}
    assert seen["user"] == {"id": tech["id"], "name": "Tech", "admin": False}


async def test_the_docs_pages_load_only_local_assets(api: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await api.get(path)
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text)
        urls += re.findall(r"(?:url|spec-url): ?'([^']+)'", page.text)
        assert urls
        assert not [url for url in urls if "//" in url], f"{path} loads {urls}"
        for url in urls:
            assert (await api.get(url)).status_code == 200, url
    assert "/api/status" in (await api.get("/openapi.json")).json()["paths"]
