"""Existing front ends carry over: the real ``@placeos/ts-client`` against a master and edge.

The library (installed from npm at the version pinned in ``tests/frontend``) runs in
node and is driven through its public API only, as a PlaceOS front end would: it
fetches the authority, opens the websocket where PlaceOS has it, binds, executes,
watches debug lines, and calls the REST functions, against real ``python -m app
serve`` processes; then the edge is killed and restored under it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.sites import TOKEN, Edge, Site, open_site
from tests.support.frontend import FrontEnd, FrontEndError, front_end
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ECHO = {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path) as running:
        yield running


@pytest.fixture
async def edge(site: Site) -> Edge:
    """An edge with a public URL whose Echo module the master fails over within a second."""
    return await site.add_edge(
        "Site", driver=ECHO, module={"name": "Echo"}, timeout=1, api_url=True
    )


def target(edge: Edge, name: str) -> dict[str, Any]:
    return {"sys": edge.system_id, "mod": "Echo", "index": 1, "name": name}


async def execute(client: FrontEnd, edge: Edge, method: str, *args: Any) -> Any:
    return await client.call("execute", **target(edge, method), args=list(args))


async def controller_is(site: Site, edge: Edge, controller: str) -> bool:
    return bool((await site.control(edge))["controller"] == controller)


async def test_a_placeos_front_end_works_unchanged_through_a_failover(
    site: Site, edge: Edge
) -> None:
    async def power_off() -> bool:
        response = await site.http.post(
            f"/api/systems/{edge.system_id}/exec",
            json={"module": "Echo", "method": "set", "args": ["power", "off"]},
            headers={"Prefer": "routing=proxy"},
        )
        return response.status_code == 200

    await wait_until(power_off, timeout=20, message="the edge's module to answer")
    async with front_end(site.certificates.ca) as panel, front_end() as kiosk:
        # A PlaceOS panel at the master with a user token; an ACA Engine kiosk at the
        # edge with an API key (a fixed device: /control/websocket?fixed_device=true).
        authority = await panel.call(
            "setup", host=urlsplit(site.master.url).netloc, secure=True, token=TOKEN
        )
        assert authority["version"].startswith("2.")
        await kiosk.call(
            "setup",
            host=urlsplit(edge.process.url).netloc,
            secure=False,
            api_key=TOKEN,
            version="ACA Engine",
        )

        # Bind: the current value, then a change made through the library.
        power = await panel.call("bind", **target(edge, "power"))
        await panel.wait_for(lambda e: e.get("key") == power and e["value"] == "off")
        assert await execute(panel, edge, "set", "power", "on") is None
        await panel.wait_for(lambda e: e.get("key") == power and e["value"] == "on")
        assert await execute(panel, edge, "echo", {"hello": [1, 2]}) == {"hello": [1, 2]}

        # Errors are rejected with PlaceOS's codes.
        for call, code in [
            ({**target(edge, "warp"), "args": []}, 3),
            ({**target(edge, "echo"), "mod": "Projector", "args": [1]}, 6),
            ({**target(edge, "echo"), "sys": "sys-nope", "args": [1]}, 5),
        ]:
            with pytest.raises(FrontEndError) as rejected:
                await panel.call("execute", **call)
            assert rejected.value.error["code"] == code, rejected.value.error

        # Debug lines name the module and its class, without the server's traceback.
        await panel.call("debug", sys=edge.system_id, mod="Echo", index=1)
        with pytest.raises(FrontEndError):
            await execute(panel, edge, "fail", "projector on fire")
        line = await panel.wait_for(lambda e: e.get("event") == "debug" and "fire" in e["message"])
        assert (line["mod_id"], line["class_name"], line["module"]) == (
            edge.module_id,
            "Echo",
            "Echo_1",
        )
        assert line["level"] == "error" and "Traceback" not in line["message"]
        await panel.call("ignore", sys=edge.system_id, mod="Echo", index=1)

        # 200 calls at once over the one websocket: all answered, none refused.
        many = await panel.call(
            "many", sys=edge.system_id, mod="Echo", index=1, name="echo", count=200
        )
        assert many["errors"] == []
        assert sorted(many["values"]) == list(range(200))

        # The library's REST functions, at the master, for the system on the edge.
        await check_rest_functions(panel, edge)

        # Unbind: the library stops hearing the variable.
        await panel.call("unbind", **target(edge, "power"))
        await execute(panel, edge, "set", "power", "standby")
        assert "standby" not in panel.values(power)

        # The edge dies: the master takes over and the bound client keeps hearing values.
        volume = await panel.call("bind", **target(edge, "volume"))
        assert await kiosk.call("bind", **target(edge, "volume")) == volume
        await kiosk.wait_for(lambda e: e.get("event") == "connected" and e["connected"])
        kiosk.events.clear()
        await edge.process.kill()
        await wait_until(
            lambda: controller_is(site, edge, "master"),
            timeout=20,
            message="the master to take over",
        )
        await wait_until(
            lambda: _set(panel, edge, "volume", 2),
            timeout=20,
            message="a call through the master after the failover",
        )
        await panel.wait_for(lambda e: e.get("key") == volume and e["value"] == 2)

        # The edge comes back and is restored: values keep arriving, from the edge.
        await edge.process.start()
        await edge.process.wait_ready()
        await wait_until(lambda: _online(site, edge), timeout=20, message="the edge to reconnect")
        restored = await site.http.post(f"/api/edges/{edge.id}/restore")
        assert restored.status_code == 200, restored.text
        await wait_until(
            lambda: _set(panel, edge, "volume", 3),
            timeout=20,
            message="a call through the master after the restore",
        )
        await panel.wait_for(lambda e: e.get("key") == volume and e["value"] == 3)
        state = await site.module_state(edge.process, edge.module_id)
        assert state["volume"] == 3, "the edge runs the module again"

        # The kiosk lost its edge, reconnected on its own and bound again.
        await kiosk.wait_for(lambda e: e.get("event") == "connected" and not e["connected"])
        await kiosk.wait_for(lambda e: e.get("key") == volume and e["value"] == 3, timeout=40)
        await execute(panel, edge, "set", "volume", 4)
        await kiosk.wait_for(lambda e: e.get("key") == volume and e["value"] == 4)


async def check_rest_functions(panel: FrontEnd, edge: Edge) -> None:
    async def rest(fn: str, *args: Any) -> Any:
        return await panel.call("rest", fn=fn, args=list(args))

    listed = await rest("querySystems", {"q": "Site"})
    assert [system["id"] for system in listed["data"]] == [edge.system_id]
    assert listed["total"] == 1
    shown = await rest("showSystem", edge.system_id)
    assert (shown["id"], shown["name"], shown["modules"]) == (
        edge.system_id,
        "Site room",
        [edge.module_id],
    )
    assert await rest("executeOnSystem", edge.system_id, "echo", "Echo", 1, ["rest"]) == "rest"
    answered = await panel.call("headers", path=f"/systems/{edge.system_id}/Echo_1/echo")
    assert (answered["via"], answered["x-engine-node"]) == ("1.1 master", f"edge:{edge.id}")
    assert (await rest("systemModuleState", edge.system_id, "Echo", 1))["power"] == "on"
    assert await rest("lookupSystemModuleState", edge.system_id, "Echo", 1, "power") == "on"
    functions = await rest("functionList", edge.system_id, "Echo", 1)
    assert functions["echo"]["order"] == ["value"]
    # moduleTypes and moduleCount, which 4.7.7 does not export, through its own ``get``.
    count = f"/systems/{edge.system_id}/count"
    assert await panel.call("get", path=count) == {"Echo": 1}
    assert await panel.call("get", path=f"{count}?module=Echo") == {"count": 1}


async def _set(panel: FrontEnd, edge: Edge, name: str, value: Any) -> bool:
    try:
        await execute(panel, edge, "set", name, value)
    except FrontEndError:
        return False
    return True


async def _online(site: Site, edge: Edge) -> bool:
    return bool((await site.control(edge))["online"])


async def test_a_placeos_front_end_follows_its_room_with_discovery(site: Site, edge: Edge) -> None:
    """A kiosk built on the library finds its room's server with discovery and moves with
    ``setup()`` when its server goes: to the master when the edge dies, back to the edge
    when the master dies after a restore (client.mjs, ``follow``)."""
    issued = await site.post(f"/api/systems/{edge.system_id}/keys", {"name": "kiosk"})
    master_host, edge_host = urlsplit(site.master.url).netloc, urlsplit(edge.process.url).netloc
    async with front_end(site.certificates.ca) as kiosk:
        host = await kiosk.call(
            "follow", sys=edge.system_id, servers=[site.master.url], api_key=issued["key"]
        )
        assert host == edge_host, "discovery names the edge, which controls the room"
        volume = await kiosk.call("bind", **target(edge, "volume"))
        await wait_until(lambda: _set(kiosk, edge, "volume", 1), timeout=20, message="a call")
        await kiosk.wait_for(lambda e: e.get("key") == volume and e["value"] == 1)

        kiosk.events.clear()
        await edge.process.kill()
        await kiosk.wait_for(lambda e: e.get("event") == "moved" and e["host"] == master_host)
        await wait_until(
            lambda: controller_is(site, edge, "master"), timeout=20, message="the takeover"
        )
        await wait_until(lambda: _set(kiosk, edge, "volume", 2), timeout=20, message="a call")
        await kiosk.wait_for(lambda e: e.get("key") == volume and e["value"] == 2)

        await edge.process.start()
        await edge.process.wait_ready()
        await wait_until(lambda: _online(site, edge), timeout=20, message="the edge to reconnect")
        restored = await site.http.post(f"/api/edges/{edge.id}/restore")
        assert restored.status_code == 200, restored.text
        kiosk.events.clear()
        await site.master.kill()
        await kiosk.wait_for(lambda e: e.get("event") == "moved" and e["host"] == edge_host)
        await wait_until(lambda: _set(kiosk, edge, "volume", 3), timeout=20, message="a call")
        await kiosk.wait_for(lambda e: e.get("key") == volume and e["value"] == 3)
        state = await site.module_state(edge.process, edge.module_id)
        assert state["volume"] == 3, "the call reached the edge's module"
