"""The status page and the API docs in real headless Chromium, against the running demo.

The browser reaches nothing but loopback (see :mod:`tests.support.browser`), so the
page, Swagger UI and ReDoc must bring every asset from the server itself.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support import browser
from tests.support.demo import RunningDemo, running_demo
from tests.support.wait import wait_until

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing())),
]

TOKEN = "status-page-admin"
FAILOVER_S = 4.0
#: How long the page may lag behind a change of controller.
LIVE_S = 1.0
#: Run in the page: stop the stream, then render the last snapshot with every optional
#: field of the control document set.
UNUSUAL_CONTROL = """
stream.abort(); stream = null;
const snapshot = structuredClone(latest);
const control = snapshot.locations[0].control;
const now = new Date().toISOString();
control.link_error = "bad proof";
control.link_error_at = now;
control.witness = {checked_at: now, result: "unreachable", detail: "timed out",
                   last_alive_at: now};
control.pending = {decision: "takeover", reason: "store unwritable", since: now};
onSnapshot(snapshot);
"""
REDOC_VENDOR_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[RunningDemo]:
    options = ("--token", TOKEN, "--failover-timeout", str(FAILOVER_S))
    async with running_demo(tmp_path / "demo", *options) as running:
        yield running


def text_of(driver: WebDriver, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        element = driver.find_element("css selector", css)
        return str(element.text) if element.is_displayed() else ""
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def wait_for(driver: WebDriver, what: str, condition: Any, timeout: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(
        lambda _: condition(), message=f"waiting for {what}"
    )


def resources_outside(driver: WebDriver, origin: str) -> list[str]:
    """URLs the page requested from anywhere but ``origin``."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    return [url for url in urls if not url.startswith(origin)]


async def test_an_operator_watches_a_failover_and_restores_the_edge(demo: RunningDemo) -> None:
    names = await demo.exports()
    master = names["API"].removesuffix("/api")
    card = f"[data-location='{names['EDGE']}']"
    controller = f"{card} [data-field=controller]"
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    async def control() -> dict[str, Any]:
        body: dict[str, Any] = (
            await http.get(f"{names['API']}/edges/{names['EDGE']}/control")
        ).json()
        return body

    with browser.chromium() as driver:
        driver.get(f"{master}/")
        wait_for(driver, "the sign-in form", lambda: text_of(driver, "#sign-in"))
        driver.find_element("id", "token").send_keys("not-a-token")
        driver.find_element("id", "sign-in-button").click()
        wait_for(driver, "a refusal", lambda: "Sign-in failed" in text_of(driver, "#sign-in-error"))

        token = driver.find_element("id", "token")
        token.clear()
        token.send_keys(TOKEN)
        driver.find_element("id", "sign-in-button").click()
        wait_for(driver, "the edge in control", lambda: text_of(driver, controller) == "edge")
        assert "edge online" in text_of(driver, card)
        assert driver.execute_script("return sessionStorage.getItem('engine-token')") == TOKEN
        assert driver.execute_script("return localStorage.length") == 0
        assert not driver.get_cookies()

        # Kill the edge: the page counts the failover down, then shows the master.
        os.kill(int((Path(names["DEMO"]) / "edge.pid").read_text()), signal.SIGKILL)
        countdown = f"{card} [data-countdown]"
        wait_for(driver, "the countdown", lambda: "Failover in" in text_of(driver, countdown))
        assert "1 failover pending" in text_of(driver, "#summary")
        assert driver.title.startswith("⚠ ")
        wait_for(driver, "master in control", lambda: text_of(driver, controller) == "master", 30)
        shown_at = time.time()
        taken_over = await control()
        assert taken_over["controller"] == "master"
        decided_at = datetime.fromisoformat(taken_over["since"]).timestamp()
        lag = shown_at - decided_at
        print(f"the page showed the takeover {lag:.3f} s after the decision")
        assert lag <= LIVE_S, f"shown {lag:.2f} s late"
        assert not text_of(driver, countdown)

        # Start the edge again; once it is online, restore it from the page.
        os.kill(demo.process.pid, signal.SIGUSR1)
        await demo.read_until(r"the edge is up again")
        wait_for(driver, "the edge online", lambda: "edge online" in text_of(driver, card))
        restore = f"{card} button.restore"
        wait_for(
            driver,
            "restore enabled",
            lambda: driver.find_element("css selector", restore).is_enabled(),
        )
        driver.find_element("css selector", restore).click()
        wait_for(driver, "the confirmation", lambda: text_of(driver, "#confirm-text"))
        driver.find_element("id", "confirm-yes").click()
        wait_for(driver, "the edge back in control", lambda: text_of(driver, controller) == "edge")
        await wait_until(
            lambda: _controller_is(control, "edge"), timeout=10, message="the API to agree"
        )
        assert resources_outside(driver, master) == []

        # What the control document may also say: a refused link, the witness's view,
        # a decision waiting for the store (the live stream is stopped first).
        driver.execute_script(UNUSUAL_CONTROL)
        wait_for(driver, "the link error", lambda: "bad proof" in text_of(driver, card))
        shown = text_of(driver, card)
        assert "Link refused" in shown
        assert "the other side cannot be reached" in shown
        assert "Waiting for the store to record “takeover”: store unwritable" in shown

        # The API docs render their operations with nothing but loopback reachable.
        driver.get(f"{master}/docs")
        wait_for(
            driver,
            "Swagger UI's operations",
            lambda: len(driver.find_elements("css selector", ".opblock")) > 20,
        )
        paths = {e.text for e in driver.find_elements("css selector", ".opblock-summary-path")}
        assert "/api/edges/{edge_id}/control" in {p.replace("\u200b", "") for p in paths}
        assert resources_outside(driver, master) == []

        driver.get(f"{master}/redoc")
        wait_for(
            driver,
            "ReDoc's operations",
            lambda: (
                len(driver.find_elements("css selector", "[data-section-id^='operation/']")) > 20
            ),
        )
        # ReDoc's sidebar asks its vendor's CDN for a logo; the page's CSP refuses it.
        assert resources_outside(driver, master) in ([], [REDOC_VENDOR_LOGO])
    await http.aclose()


async def _controller_is(control: Any, expected: str) -> bool:
    return bool((await control())["controller"] == expected)
