"""The status page and the API docs in real headless Chromium, against the running demo.

The browser reaches nothing but loopback (see :mod:`tests.support.browser`), so the
page, Swagger UI and ReDoc must bring every asset from the server itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
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
stopFollowing();
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
        # Never coloured healthy while it awaits a failover: the card and its countdown,
        # read together.
        counting, tone, words = driver.execute_script(
            "const card = document.querySelector(arguments[0]);"
            "return [card.querySelector('[data-countdown]').textContent,"
            " card.dataset.condition, card.textContent];",
            card,
        )
        assert tone != "healthy", (counting, tone)
        if counting.startswith("Failover in"):  # read before the master took over
            assert tone == "pending", tone
            assert "awaiting failover" in words
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
        assert "Last link error" in shown  # the edge is online: the error is history
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


# --- a frozen master ---------------------------------------------------------------------

#: The pages' keep-alive interval here: the master's page must say it is not live within
#: twice that.
KEEPALIVE_S = 2.0
#: Run in the page: record every change of the live indicator in ``window.liveLog``.
WATCH_LIVE = """
window.liveLog = [];
new MutationObserver(() => window.liveLog.push(document.getElementById("live").textContent))
  .observe(document.getElementById("live"), {childList: true, characterData: true, subtree: true});
"""


def signed_in(driver: WebDriver, url: str, token: str) -> None:
    driver.get(f"{url}/")
    wait_for(driver, "the sign-in form", lambda: text_of(driver, "#sign-in"))
    driver.find_element("id", "token").send_keys(token)
    driver.find_element("id", "sign-in-button").click()
    wait_for(driver, "the live stream", lambda: text_of(driver, "#live") == "live")


async def test_both_pages_tell_a_frozen_master_and_recover_without_a_reload(
    tmp_path: Path,
) -> None:
    """SIGSTOP the master: its page says it is not live within twice the keep-alive
    interval and greys what it last heard; the edge's page says the master is
    unreachable. SIGCONT: both are live and linked again, no reload."""
    from tests.integration.rooms import Rooms
    from tests.integration.sites import TOKEN, open_site

    keepalive = {"ENGINE_STATUS_KEEPALIVE_S": f"{KEEPALIVE_S:g}"}
    async with open_site(tmp_path, tls=False, **keepalive) as site, AsyncExitStack() as stack:
        room = await Rooms(site, stack).add("frozen", timeout=30, env=keepalive, api_url=True)
        await room.watch.wait_held_by("frozen", timeout=10)
        master, edge = site.master, room.edge.process
        card = f"[data-location='{room.edge.id}']"
        with browser.chromium() as master_page, browser.chromium() as edge_page:
            signed_in(master_page, master.url, TOKEN)
            signed_in(edge_page, edge.url, TOKEN)
            link = "[data-field=master-link]"
            wait_for(
                edge_page,
                "the edge linked",
                lambda: text_of(edge_page, link) == "linked to the master",
            )
            wait_for(
                master_page, "the edge healthy", lambda: _condition(master_page, card) == "healthy"
            )
            # Quiet for a while: keep-alives alone keep the page live, not a moment off.
            master_page.execute_script(WATCH_LIVE)
            await asyncio.sleep(2 * KEEPALIVE_S)
            assert master_page.execute_script("return window.liveLog") == []
            assert text_of(master_page, "#live") == "live"

            os.kill(master.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                wait_for(
                    master_page,
                    "the master's page to say it is not live",
                    lambda: text_of(master_page, "#live").startswith("not live"),
                    timeout=10,
                )
                noticed = time.monotonic() - frozen_at
                print(
                    f"\nthe master's page noticed the frozen master after {noticed:.2f} s "
                    f"(keep-alive {KEEPALIVE_S:g} s)"
                )
                assert noticed <= 2 * KEEPALIVE_S, f"noticed after {noticed:.2f} s"
                assert "no word from the server" in text_of(master_page, "#live")
                assert "Not live: what you see is as of" in text_of(master_page, "#stale")
                assert master_page.execute_script(
                    "return document.body.classList.contains('stale')"
                )

                wait_for(
                    edge_page,
                    "the edge's page to say the master is unreachable",
                    lambda: text_of(edge_page, link) == "master unreachable",
                    timeout=20,
                )
                print(
                    f"the edge's page said the master is unreachable after "
                    f"{time.monotonic() - frozen_at:.2f} s"
                )
                assert "master unreachable" in text_of(edge_page, "#summary")
                assert text_of(edge_page, "#live") == "live"  # the edge itself answers
                assert "master unreachable" in text_of(edge_page, card)
            finally:
                os.kill(master.pid, signal.SIGCONT)
            resumed_at = time.monotonic()

            wait_for(
                master_page,
                "the master's page live again",
                lambda: text_of(master_page, "#live") == "live",
                20,
            )
            print(
                f"the master's page was live again {time.monotonic() - resumed_at:.2f} s "
                "after SIGCONT"
            )
            assert not text_of(master_page, "#stale")
            assert not master_page.execute_script(
                "return document.body.classList.contains('stale')"
            )
            wait_for(
                edge_page,
                "the edge linked again",
                lambda: text_of(edge_page, link) == "linked to the master",
                30,
            )
            wait_for(
                master_page,
                "the edge healthy again",
                lambda: _condition(master_page, card) == "healthy",
                30,
            )
            # Neither page was reloaded: the sign-in form never came back.
            for page in (master_page, edge_page):
                assert not text_of(page, "#sign-in")
                assert (
                    page.execute_script("return performance.getEntriesByType('navigation').length")
                    == 1
                )


def _condition(driver: WebDriver, card: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", card).get_attribute("data-condition"))
    except (NoSuchElementException, StaleElementReferenceException):
        return ""
