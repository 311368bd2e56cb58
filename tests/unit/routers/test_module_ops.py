"""Running modules over REST: exec, state, start, stop, error mapping and driver reload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.node import Node
from app.settings import Settings
from tests.support.wait import wait_until
from tests.unit.routers.test_crud import assert_problem, create
from tests.unit.routers.test_users import issue

#: A method call may take this long here before it is a 504 (keeps the timeout test quick).
EXEC_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Placed:
    """A module placed in a system, running."""

    driver_id: str
    system_id: str
    module_id: str


async def add_driver(api: httpx.AsyncClient, file: str, class_name: str, role: str) -> str:
    driver = await create(
        api,
        "/api/drivers",
        {"name": class_name, "file": file, "class_name": class_name, "role": role},
    )
    return str(driver["id"])


async def add_module(api: httpx.AsyncClient, driver_id: str, name: str, **fields: Any) -> str:
    module = await create(api, "/api/modules", {"driver_id": driver_id, "name": name, **fields})
    return str(module["id"])


async def wait_running(node: Node, module_id: str) -> None:
    await wait_until(
        lambda: node.modules.manager.is_running(module_id),
        timeout=10,
        message=f"module {module_id} to run",
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"request_timeout_s": EXEC_TIMEOUT_S})


@pytest.fixture
async def echo(api: httpx.AsyncClient, node: Node) -> Placed:
    driver_id = await add_driver(api, "generic/echo.py", "Echo", "service")
    system = await create(api, "/api/systems", {"name": "Room 1"})
    module_id = await add_module(api, driver_id, "Echo", system_id=system["id"])
    await wait_running(node, module_id)
    return Placed(driver_id, str(system["id"]), module_id)


async def exec_(api: httpx.AsyncClient, module_id: str, **body: Any) -> httpx.Response:
    return await api.post(f"/api/modules/{module_id}/exec", json=body)


async def test_exec_returns_what_the_method_returns(api: httpx.AsyncClient, echo: Placed) -> None:
    value = {"levels": [1, 2.5, None], "name": "Zone A"}
    response = await exec_(api, echo.module_id, method="echo", args=[value])
    assert response.status_code == 200, response.text
    assert response.json() == {"result": value}
    by_keyword = await exec_(api, echo.module_id, method="echo", kwargs={"value": "hi"})
    assert by_keyword.json() == {"result": "hi"}


async def test_state_is_the_status_and_revalidates(api: httpx.AsyncClient, echo: Placed) -> None:
    path = f"/api/modules/{echo.module_id}/state"
    await exec_(api, echo.module_id, method="set", args=["power", True])
    first = await api.get(path)
    assert first.status_code == 200
    assert first.json() == {"power": True}
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]

    unchanged = await api.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag

    await exec_(api, echo.module_id, method="set", args=["power", False])
    changed = await api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json() == {"power": False}
    assert changed.headers["etag"] != etag


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"method": "warp"}, 404, "'warp'"),
        ({"method": "echo", "args": [1, 2]}, 422, "args"),
        ({"method": "echo", "kwargs": {"value": 1, "colour": "red"}}, 422, "colour"),
        ({"method": "fail", "args": ["projector lamp exploded"]}, 500, "projector lamp exploded"),
        ({"method": "sleep", "args": [30]}, 504, f"{EXEC_TIMEOUT_S:g} s"),
        ({"method": "echo", "args": [1], "timeout": 3}, 422, "timeout"),
        ({"method": "", "args": [1]}, 422, "method"),
        ({"args": [1]}, 422, "method"),
        ({"method": "echo", "args": "x"}, 422, "args"),
    ],
)
async def test_exec_errors_are_problems(
    api: httpx.AsyncClient, echo: Placed, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await exec_(api, echo.module_id, **body)
    assert_problem(response, status)
    assert detail in response.json()["detail"]


async def test_driver_failure_names_the_exception(api: httpx.AsyncClient, echo: Placed) -> None:
    response = await exec_(api, echo.module_id, method="fail", args=["no lamp"])
    problem = response.json()
    assert problem["exception"] == "RuntimeError"
    assert problem["method"] == "fail"
    assert problem["module_id"] == echo.module_id
    # The module survives its driver raising.
    assert (await exec_(api, echo.module_id, method="echo", args=[1])).json() == {"result": 1}


async def test_unknown_module_is_404(api: httpx.AsyncClient, echo: Placed) -> None:
    assert_problem(await api.get("/api/modules/mod-nope/state"), 404)
    assert_problem(await exec_(api, "mod-nope", method="echo", args=[1]), 404)
    assert_problem(await api.post("/api/modules/mod-nope/start"), 404)


async def test_module_in_no_system_is_not_loaded_here(api: httpx.AsyncClient, echo: Placed) -> None:
    loose = await add_module(api, echo.driver_id, "Loose")
    for response in (
        await api.get(f"/api/modules/{loose}/state"),
        await exec_(api, loose, method="echo", args=[1]),
        await api.post(f"/api/modules/{loose}/start"),
        await api.post(f"/api/modules/{loose}/stop"),
    ):
        assert_problem(response, 409)
        assert "not loaded on this server" in response.json()["detail"]


async def test_stop_and_start(api: httpx.AsyncClient, node: Node, echo: Placed) -> None:
    stopped = await api.post(f"/api/modules/{echo.module_id}/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {
        "id": echo.module_id,
        "name": "Echo",
        "driver_id": echo.driver_id,
        "role": "service",
        "running": False,
        "error": None,
    }
    assert not node.modules.manager.is_running(echo.module_id)
    refused = await exec_(api, echo.module_id, method="echo", args=[1])
    assert_problem(refused, 409)
    assert "not running" in refused.json()["detail"]

    started = await api.post(f"/api/modules/{echo.module_id}/start")
    assert started.json()["running"] is True
    assert (await exec_(api, echo.module_id, method="echo", args=[2])).json() == {"result": 2}


async def test_calls_need_a_user_and_operations_an_admin(
    api: httpx.AsyncClient, echo: Placed
) -> None:
    user = await create(api, "/api/users", {"name": "Panel"})
    as_user = {"Authorization": f"Bearer {await issue(api, user['id'])}"}
    module = f"/api/modules/{echo.module_id}"
    call = {"method": "echo", "args": [1]}
    assert (await api.post(f"{module}/exec", json=call, headers=as_user)).status_code == 200
    assert (await api.get(f"{module}/state", headers=as_user)).status_code == 200
    for operation in (f"{module}/start", f"{module}/stop", f"/api/drivers/{echo.driver_id}/reload"):
        assert_problem(await api.post(operation, headers=as_user), 403)
    nobody = {"Authorization": ""}
    assert_problem(await api.post(f"{module}/exec", json=call, headers=nobody), 401)
    assert_problem(await api.get(f"{module}/state", headers=nobody), 401)


def edited_echo(node: Node, returns: str) -> str:
    source = (node.repository.path / "generic" / "echo.py").read_text()
    edited = source.replace("        return value\n", f"        return {returns}\n")
    assert edited != source
    return edited


async def test_reload_with_an_inline_edit_changes_a_running_module(
    api: httpx.AsyncClient, node: Node, echo: Placed
) -> None:
    path = f"/api/drivers/{echo.driver_id}/reload"
    response = await api.post(
        path, json={"files": {"generic/echo.py": edited_echo(node, '["v2", value]')}}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "commit": node.repository.head(),
        "modules": [echo.module_id],
        "edges": {},  # no edge runs this driver
    }
    assert (await exec_(api, echo.module_id, method="echo", args=["x"])).json() == {
        "result": ["v2", "x"]
    }

    broken = await api.post(path, json={"files": {"generic/echo.py": "class Echo(:\n"}})
    assert_problem(broken, 422, field="file")
    assert "generic/echo.py: line 1: SyntaxError" in broken.json()["detail"]
    # The module keeps running the code it had.
    assert node.modules.manager.is_running(echo.module_id)
    assert (await exec_(api, echo.module_id, method="echo", args=["y"])).json() == {
        "result": ["v2", "y"]
    }


async def test_reload_without_edits_and_its_errors(api: httpx.AsyncClient, echo: Placed) -> None:
    plain = await api.post(f"/api/drivers/{echo.driver_id}/reload")
    assert plain.status_code == 200
    assert plain.json()["modules"] == [echo.module_id]
    assert_problem(await api.post("/api/drivers/drv-nope/reload"), 404)
    outside = await api.post(
        f"/api/drivers/{echo.driver_id}/reload", json={"files": {"../escape.py": "x = 1\n"}}
    )
    assert_problem(outside, 422, field="files")
    unknown_field = await api.post(f"/api/drivers/{echo.driver_id}/reload", json={"file": {}})
    assert_problem(unknown_field, 422, field="file")
