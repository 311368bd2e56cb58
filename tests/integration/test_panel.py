"""A room panel in real headless Chromium, through every failure of its servers.

A master and an edge run as real processes; the edge's display is a simulated device
that records every connection, and a :class:`DeviceWatch` names the process behind
each, so the test sees which server a call from the panel reached the device through.
The panel is loaded once from the master and signed in with a device key; then the
master is killed (the panel reloads from the device's cache and works through the
edge), the edge is killed (the master takes over under the open panel), the edge is
restored (the panel goes back to it) and the key is revoked.

The servers speak plain HTTP on 127.0.0.1: a service worker needs a secure context,
and Chromium counts loopback as one (a certificate it does not trust would make it
refuse the worker). The edge on another port is another origin, reached with CORS.
Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
import pytest

from tests.integration.rooms import Room, Rooms, online, report
from tests.integration.sites import TOKEN, Site, open_site
from tests.integration.test_status_page import text_of
from tests.support import browser
from tests.support.engine import ROOT
from tests.support.wait import wait_until

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing())),
]

FAILOVER_S = 3.0
#: The limits of the issue: a call through the edge after a reload from the cache, a
#: call through the master after its takeover, the panel back on the edge after a restore.
AFTER_RELOAD_S = 3.0
AFTER_TAKEOVER_S = 2.0
AFTER_RESTORE_S = 2.0

#: Everything the panel keeps on the device.
CACHED = 7
#: Run in the page: the device's copy of the panel becomes an older version.
PLANT_OLD_PANEL = """
const done = arguments[arguments.length - 1];
const old = new Response("<!doctype html><title>old panel</title>", {
  headers: {"Content-Type": "text/html"},
});
caches.open("engine-panel").then((c) => c.put("/panel/", old)).then(() => done(true));
"""
CACHED_PAGE = """
const done = arguments[arguments.length - 1];
caches.open("engine-panel").then((c) => c.match("/panel/")).then((r) => r.text()).then(done);
"""


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path, tls=False) as running:
        yield running


async def ctl(site: Site, *args: str) -> str:
    """``engine ctl ARGS`` against the site's master, as an operator runs it; its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env.update(ENGINE_URL=site.master.url, ENGINE_TOKEN=TOKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "ctl", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def servers_status(server: str, system: str, key: str) -> int:
    """The status of the discovery request a panel makes with ``key``, at ``server``."""
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(
            f"{server}/api/systems/{system}/servers", headers={"X-API-Key": key}
        )
    return answer.status_code


async def check_ctl_keys(site: Site, system: str) -> None:
    """``engine ctl panel-key``: a key in ``--json``'s ``key``, listed, then revoked."""
    issued = json.loads(await ctl(site, "panel-key", system, "--name", "spare", "--json"))
    assert await servers_status(site.master.url, system, issued["key"]) == 200
    assert issued["id"] in await ctl(site, "panel-key", system, "--list")
    assert "revoked" in await ctl(site, "panel-key", system, "--revoke", issued["id"])
    assert await servers_status(site.master.url, system, issued["key"]) == 401
    assert issued["id"] not in await ctl(site, "panel-key", system, "--list")


async def key_from_the_status_page(driver: WebDriver, site: Site, system: str) -> str:
    """An operator signs in to the status page and creates the room's device key there
    (a spare one first, revoked again); the panel link it shows."""
    from selenium.webdriver.support.ui import Select

    driver.get(f"{site.master.url}/")
    driver.find_element("id", "token").send_keys(TOKEN)
    driver.find_element("id", "sign-in-button").click()
    await shown(driver, "the room panels", lambda: text_of(driver, "#room-panels") != "", 10)
    driver.find_element("css selector", "#room-panels summary").click()
    Select(driver.find_element("id", "panel-key-room")).select_by_value(system)
    for name in ("spare", "lobby panel"):
        field = driver.find_element("id", "panel-key-name")
        field.clear()
        field.send_keys(name)
        driver.find_element("id", "panel-key-create").click()
        await shown(driver, f"the {name} key", listing(driver, name), 5)
        if name == "spare":
            driver.find_element("css selector", "#panel-key-list button").click()
            driver.switch_to.alert.accept()
            await shown(
                driver,
                "the spare revoked",
                lambda: "spare" not in text_of(driver, "#panel-key-list"),
                5,
            )
    return str(driver.find_element("id", "panel-key-link").get_attribute("href"))


def listing(driver: WebDriver, name: str) -> Callable[[], bool]:
    """The status page lists a key of that name."""
    return lambda: name in text_of(driver, "#panel-key-list")


def attribute(driver: WebDriver, css: str, name: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        value = driver.find_element("css selector", css).get_attribute(name)
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    return None if value is None else str(value)


async def shown(
    driver: WebDriver, what: str, condition: Callable[[], bool], timeout: float
) -> float:
    """Wait until the page shows ``condition``; the monotonic time it did."""
    await wait_until(condition, timeout=timeout, interval=0.02, message=what)
    return time.monotonic()


def on(driver: WebDriver, role: str) -> Callable[[], bool]:
    """The panel says it is on a server of that role, and has nothing to wait for."""
    return lambda: (
        attribute(driver, "#server", "data-role") == role and not text_of(driver, "#notice")
    )


def state_shown(driver: WebDriver) -> bool:
    return text_of(driver, "[data-module='Display_1'] [data-var='connected']") == "true"


def call(driver: WebDriver, method: str, *args: Any) -> None:
    """Fill the form as a person would, and press Run."""
    form = driver.find_element("id", "call")
    for name, value in (
        ("module", "Display"),
        ("index", "1"),
        ("method", method),
        ("args", json.dumps(list(args))),
    ):
        field = form.find_element("name", name)
        field.clear()
        field.send_keys(value)
    form.find_element("name", "run").click()


async def received(room: Room, line: str, timeout: float) -> float:
    """Wait until the device received ``line``; the monotonic time it had."""
    await room.device.wait_for(lambda: line in room.device.received, timeout=timeout)
    return time.monotonic()


def service_worker_ready(driver: WebDriver) -> int:
    """How many files the panel's service worker holds, once it controls the page."""
    script = """
    const done = arguments[arguments.length - 1];
    if (!navigator.serviceWorker.controller) { done(0); return; }
    caches.open("engine-panel").then((c) => c.keys()).then((k) => done(k.length), () => done(0));
    """
    count: Any = driver.execute_async_script(script)
    return int(count)


def resources_outside(driver: WebDriver, origins: tuple[str, ...]) -> list[str]:
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    return [url for url in urls if not url.startswith(origins)]


async def test_a_room_panel_keeps_working_through_every_failure(site: Site, rooms: Rooms) -> None:
    room = await rooms.add("Lobby", timeout=FAILOVER_S, api_url=True)
    await room.watch.wait_held_by("Lobby", timeout=10)
    system = room.edge.system_id
    master, edge = site.master.url, room.edge.process.url
    await check_ctl_keys(site, system)

    with browser.chromium() as driver:
        driver.set_script_timeout(10)
        panel_url = await key_from_the_status_page(driver, site, system)
        listed = await ctl(site, "panel-key", system, "--list")
        [key_id] = [line.split()[0] for line in listed.splitlines() if "lobby panel" in line]
        driver.get(panel_url)
        await shown(driver, "the panel on the edge", on(driver, "edge"), 10)
        await shown(driver, "the room's state", lambda: state_shown(driver), 10)
        assert "#" not in driver.current_url, "the key leaves the address bar"
        assert text_of(driver, "#room") == "Lobby room"
        await shown(driver, "the panel kept", lambda: service_worker_ready(driver) == CACHED, 10)
        installable = driver.execute_cdp_cmd("Page.getInstallabilityErrors", {})
        assert installable["installabilityErrors"] == [], installable

        # A device holding an older panel gets this one at its next visit, the master up.
        driver.execute_async_script(PLANT_OLD_PANEL)
        driver.refresh()
        await shown(driver, "the panel on the edge", on(driver, "edge"), 10)
        page: Any = driver.execute_async_script(CACHED_PAGE)
        assert 'id="call"' in page

        # 1. The master dies: the panel reloads from the device and works through the edge.
        await site.master.kill()
        reloaded = time.monotonic()
        driver.refresh()
        await shown(driver, "the panel on the edge", on(driver, "edge"), AFTER_RELOAD_S)
        await shown(driver, "the room's state", lambda: state_shown(driver), AFTER_RELOAD_S)
        call(driver, "send", "from the cache")
        reached = await received(room, "from the cache", AFTER_RELOAD_S)
        report(
            "the master killed: a call from the panel reloaded from its cache", reached - reloaded
        )
        assert reached - reloaded <= AFTER_RELOAD_S
        assert room.watch.open_owners() == ["Lobby"]
        await shown(
            driver, "the result", lambda: 'send: "from the cache"' in text_of(driver, "#result"), 5
        )
        assert resources_outside(driver, (master, edge)) == []

        await site.master.start()
        await site.master.wait_ready()
        await wait_until(lambda: online(site, room), timeout=15, message="the edge to reconnect")

        # 2. The edge dies: the open panel waits for the failover, then works through the master.
        await room.edge.process.kill()
        await shown(
            driver,
            "the panel waiting for the failover",
            lambda: "Waiting for the failover" in text_of(driver, "#notice"),
            FAILOVER_S + 2,
        )
        taken = await room.watch.wait_held_by("master", timeout=FAILOVER_S + 5)
        await shown(driver, "the panel on the master", on(driver, "master"), AFTER_TAKEOVER_S)
        call(driver, "send", "through the master")
        reached = await received(room, "through the master", AFTER_TAKEOVER_S)
        report("the edge killed: a call from the open panel after the takeover", reached - taken)
        assert reached - taken <= AFTER_TAKEOVER_S
        assert room.watch.open_owners() == ["master"]

        # 3. The edge is back and restored: the panel follows it without a reload.
        await room.edge.process.start()
        await room.edge.process.wait_ready()
        await wait_until(lambda: online(site, room), timeout=15, message="the edge to reconnect")
        restoring = time.monotonic()
        restored = await site.http.post(f"/api/edges/{room.edge.id}/restore")
        assert restored.status_code == 200, restored.text
        back = await shown(driver, "the panel back on the edge", on(driver, "edge"), 5)
        report("restored: the panel back on the edge", back - restoring)
        assert back - restoring <= AFTER_RESTORE_S
        call(driver, "send", "back on the edge")
        await received(room, "back on the edge", 5)
        assert room.watch.open_owners() == ["Lobby"]

        # 4. The key is revoked: the next call is refused and the panel says so.
        assert "revoked" in await ctl(site, "panel-key", system, "--revoke", key_id)
        key = unquote(panel_url.split("#x-api-key=")[1])

        async def edge_refuses() -> bool:
            return await servers_status(edge, system, key) == 401

        await wait_until(edge_refuses, timeout=5, message="the revocation to reach the edge")
        call(driver, "send", "after the revocation")
        await shown(driver, "the refusal", lambda: "Refused" in text_of(driver, "#result"), 5)
        assert attribute(driver, "#notice", "data-kind") == "refused"
        assert "no longer accepted" in text_of(driver, "#notice")
        assert "after the revocation" not in room.device.received

    assert room.watch.owners() == ["Lobby", "master", "Lobby"]
    assert room.device.max_concurrent == 1, "never two controllers"
