"""The configuration API: CRUD, validation, conditional requests, paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PROBLEM = "application/problem+json"


async def create(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def driver(api: httpx.AsyncClient) -> dict[str, Any]:
    return await create(
        api,
        "/api/drivers",
        {"name": "TCP line", "file": "generic/tcp_line.py", "class_name": "TcpLine"},
    )


@pytest.fixture
async def edge(api: httpx.AsyncClient) -> dict[str, Any]:
    return await create(api, "/api/edges", {"name": "Sydney", "timeout": 5})


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    if field is not None:
        assert body["field"] == field, body
        assert field in body["detail"]


async def test_the_curl_walkthrough(api: httpx.AsyncClient, driver: dict[str, Any]) -> None:
    edge = await api.post(
        "/api/edges",
        json={"name": "Sydney", "window_start": "0 2 * * *", "window_length": 3600},
    )
    assert edge.status_code == 201
    created = edge.json()
    assert len(created["secret"]) >= 32
    assert created["timezone"] == "UTC" and created["failover"] is True
    assert created["timeout"] == 20

    fetched = (await api.get(f"/api/edges/{created['id']}")).json()
    assert "secret" not in fetched
    listed = (await api.get("/api/edges")).json()
    assert all("secret" not in item for item in listed["items"])

    system = await create(api, "/api/systems", {"name": "Room 1", "edge_control_id": created["id"]})
    module = await create(
        api,
        "/api/modules",
        {
            "driver_id": driver["id"],
            "name": "Display",
            "ip": "127.0.0.1",
            "port": 4999,
            "system_id": system["id"],
        },
    )
    assert "system_id" not in module
    system_now = (await api.get(f"/api/systems/{system['id']}")).json()
    assert system_now["modules"] == [module["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "window_start": "not a cron", "window_length": 60}, "window_start"),
        ({"name": "x", "window_start": "0 2 * * * *", "window_length": 60}, "window_start"),
        ({"name": "x", "window_start": "0 2 * * *"}, "window_length"),
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "x", "timeout": 0}, "timeout"),
        ({"name": "x", "admins": ["user-nobody"]}, "admins[0]"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": ""}, "name"),
    ],
)
async def test_edge_validation_names_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(await api.post("/api/edges", json=body), 422, field)


async def test_unknown_ids_are_refused(api: httpx.AsyncClient, driver: dict[str, Any]) -> None:
    assert_problem(
        await api.post("/api/systems", json={"name": "r", "edge_control_id": "edge-none"}),
        422,
        "edge_control_id",
    )
    assert_problem(
        await api.post("/api/systems", json={"name": "r", "modules": ["mod-none"]}),
        422,
        "modules[0]",
    )
    assert_problem(
        await api.post("/api/modules", json={"driver_id": "drv-none", "name": "Display"}),
        422,
        "driver_id",
    )
    assert_problem(
        await api.post(
            "/api/modules",
            json={"driver_id": driver["id"], "name": "Display", "system_id": "sys-none"},
        ),
        422,
        "system_id",
    )


async def test_a_module_may_not_sit_in_two_locations(
    api: httpx.AsyncClient, driver: dict[str, Any], edge: dict[str, Any]
) -> None:
    module = await create(api, "/api/modules", {"driver_id": driver["id"], "name": "Display"})
    await create(
        api,
        "/api/systems",
        {"name": "on edge", "edge_control_id": edge["id"], "modules": [module["id"]]},
    )
    response = await api.post("/api/systems", json={"name": "on master", "modules": [module["id"]]})
    assert_problem(response, 422, "modules")
    assert "two locations" in response.json()["detail"]
    # Same location is fine.
    await create(
        api,
        "/api/systems",
        {"name": "also edge", "edge_control_id": edge["id"], "modules": [module["id"]]},
    )


async def test_moving_a_system_checks_its_modules(
    api: httpx.AsyncClient, driver: dict[str, Any], edge: dict[str, Any]
) -> None:
    module = await create(api, "/api/modules", {"driver_id": driver["id"], "name": "Display"})
    await create(api, "/api/systems", {"name": "a", "modules": [module["id"]]})
    other = await create(api, "/api/systems", {"name": "b", "modules": [module["id"]]})
    response = await api.patch(f"/api/systems/{other['id']}", json={"edge_control_id": edge["id"]})
    assert_problem(response, 422, "modules")


async def test_patch_is_a_merge_patch_with_cas(
    api: httpx.AsyncClient, edge: dict[str, Any]
) -> None:
    url = f"/api/edges/{edge['id']}"
    first = await api.get(url)
    etag = first.headers["etag"]
    assert etag == f'"{edge["version"]}"'

    updated = await api.patch(url, json={"description": "harbour"}, headers={"If-Match": etag})
    assert updated.status_code == 200
    assert updated.json()["description"] == "harbour"
    assert updated.json()["name"] == "Sydney"
    assert updated.headers["etag"] != etag

    stale = await api.patch(url, json={"description": "late"}, headers={"If-Match": etag})
    assert_problem(stale, 412)
    assert (await api.get(url)).json()["description"] == "harbour"

    reset = await api.patch(url, json={"description": None})
    assert reset.json()["description"] == ""
    assert_problem(await api.patch(url, json={"window_start": "0 3 * * *"}), 422, "window_length")


async def test_conditional_reads(api: httpx.AsyncClient, edge: dict[str, Any]) -> None:
    url = f"/api/edges/{edge['id']}"
    response = await api.get(url)
    assert response.headers["cache-control"] == "private, no-cache"
    again = await api.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    listing = await api.get("/api/edges")
    same = await api.get("/api/edges", headers={"If-None-Match": listing.headers["etag"]})
    assert same.status_code == 304
    await api.patch(url, json={"description": "changed"})
    changed = await api.get("/api/edges", headers={"If-None-Match": listing.headers["etag"]})
    assert changed.status_code == 200


async def test_paging_and_filters(api: httpx.AsyncClient, edge: dict[str, Any]) -> None:
    for index in range(5):
        await create(
            api,
            "/api/systems",
            {"name": f"room {index}", "edge_control_id": edge["id"] if index % 2 else None},
        )
    page = (await api.get("/api/systems", params={"limit": 2})).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["next"]
    seen = [item["id"] for item in page["items"]]
    while page["next"]:
        response = await api.get("/api/systems", params={"limit": 2, "after": page["next"]})
        page = response.json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen)
    on_edge = (await api.get("/api/systems", params={"edge_control_id": edge["id"]})).json()
    assert on_edge["total"] == 2
    assert_problem(await api.get("/api/systems", params={"limit": 0}), 422, "limit")


async def test_deletes(
    api: httpx.AsyncClient, driver: dict[str, Any], edge: dict[str, Any]
) -> None:
    module = await create(api, "/api/modules", {"driver_id": driver["id"], "name": "Display"})
    system = await create(
        api, "/api/systems", {"name": "r", "edge_control_id": edge["id"], "modules": [module["id"]]}
    )
    assert_problem(await api.delete(f"/api/drivers/{driver['id']}"), 409)
    assert_problem(await api.delete(f"/api/edges/{edge['id']}"), 409)
    assert (await api.delete(f"/api/modules/{module['id']}")).status_code == 204
    assert (await api.get(f"/api/systems/{system['id']}")).json()["modules"] == []
    assert_problem(await api.get(f"/api/modules/{module['id']}"), 404)
    assert (await api.delete(f"/api/systems/{system['id']}")).status_code == 204
    assert (await api.delete(f"/api/edges/{edge['id']}")).status_code == 204
    assert_problem(await api.delete(f"/api/edges/{edge['id']}"), 404)


async def test_wrong_type_is_not_found(api: httpx.AsyncClient, edge: dict[str, Any]) -> None:
    assert_problem(await api.get(f"/api/systems/{edge['id']}"), 404)


async def test_secret_rotation(api: httpx.AsyncClient, edge: dict[str, Any]) -> None:
    rotated = await api.post(f"/api/edges/{edge['id']}/secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != edge["secret"]
    assert_problem(await api.post("/api/edges/edge-none/secret"), 404)


async def test_body_must_be_an_object(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/edges", json=[1, 2])
    assert_problem(response, 422)
    response = await api.post(
        "/api/edges", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)
