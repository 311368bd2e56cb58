"""Authentication and authorization: tokens, 401, 403, edge admins."""

from __future__ import annotations

import httpx

from tests.unit.routers.test_crud import assert_problem, create


async def issue(api: httpx.AsyncClient, user_id: str) -> str:
    response = await api.post(f"/api/users/{user_id}/tokens", json={"name": "panel"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def test_no_token_is_401(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/edges", headers={"Authorization": ""})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    bad = await api.get("/api/edges", headers={"Authorization": "Bearer nope"})
    assert_problem(bad, 401)


async def test_non_admin_reads_but_cannot_write(api: httpx.AsyncClient) -> None:
    user = await create(api, "/api/users", {"name": "Tech", "email": "tech@example.com"})
    token = await issue(api, user["id"])
    as_user = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/edges", headers=as_user)).status_code == 200
    current = await api.get("/api/users/current", headers=as_user)
    assert current.json()["id"] == user["id"]
    response = await api.post("/api/edges", json={"name": "x"}, headers=as_user)
    assert_problem(response, 403)
    assert user["id"] in response.json()["detail"]
    # Their own tokens are theirs to manage, others' are not.
    assert (await api.get(f"/api/users/{user['id']}/tokens", headers=as_user)).status_code == 200
    assert_problem(await api.get("/api/users/user-admin/tokens", headers=as_user), 403)


async def test_tokens_listed_without_secret_and_revocable(api: httpx.AsyncClient) -> None:
    user = await create(api, "/api/users", {"name": "Panel"})
    token = await issue(api, user["id"])
    listed = (await api.get(f"/api/users/{user['id']}/tokens")).json()
    assert len(listed) == 1
    assert token not in str(listed) and "hash" not in listed[0]
    token_id = listed[0]["id"]
    assert (await api.delete(f"/api/users/{user['id']}/tokens/{token_id}")).status_code == 204
    response = await api.get("/api/edges", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
    assert_problem(await api.delete(f"/api/users/{user['id']}/tokens/{token_id}"), 404)


async def test_deleting_a_user_revokes_its_tokens(api: httpx.AsyncClient) -> None:
    user = await create(api, "/api/users", {"name": "Gone"})
    token = await issue(api, user["id"])
    as_user = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/edges", headers=as_user)).status_code == 200  # now cached
    assert (await api.delete(f"/api/users/{user['id']}")).status_code == 204
    assert_problem(await api.get("/api/edges", headers=as_user), 401)


async def test_a_revoked_token_fails_on_the_very_next_request(api: httpx.AsyncClient) -> None:
    user = await create(api, "/api/users", {"name": "Panel"})
    token = await issue(api, user["id"])
    as_user = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/edges", headers=as_user)).status_code == 200  # now cached
    token_id = (await api.get(f"/api/users/{user['id']}/tokens")).json()[0]["id"]
    assert (await api.delete(f"/api/users/{user['id']}/tokens/{token_id}")).status_code == 204
    assert_problem(await api.get("/api/edges", headers=as_user), 401)


async def test_demoting_an_admin_counts_from_the_next_request(api: httpx.AsyncClient) -> None:
    user = await create(api, "/api/users", {"name": "Lead", "admin": True})
    as_user = {"Authorization": f"Bearer {await issue(api, user['id'])}"}
    assert (await api.post("/api/edges", json={"name": "a"}, headers=as_user)).status_code == 201
    assert (await api.patch(f"/api/users/{user['id']}", json={"admin": False})).status_code == 200
    assert_problem(await api.post("/api/edges", json={"name": "b"}, headers=as_user), 403)


async def test_admin_bootstrap_is_a_system_admin(api: httpx.AsyncClient) -> None:
    me = (await api.get("/api/users/current")).json()
    assert me["admin"] is True
