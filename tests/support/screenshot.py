"""The README's screenshot of the status page, taken by headless Chromium.

Run ``.venv/bin/python -m tests.support.screenshot`` from the repository's directory.
Runs the demo on free ports, hands control to the master and back (so the page has a
history to show), kills the edge, and photographs the master's page in headless
Chromium while it counts the failover down. Writes ``docs/status-page.png``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import httpx

from tests.support import browser
from tests.support.demo import running_demo
from tests.support.engine import ROOT

TOKEN = "screenshot-admin"
OUTPUT = ROOT / "docs" / "status-page.png"


async def main() -> int:
    reason = browser.missing()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as data:
        options = ("--token", TOKEN, "--failover-timeout", "20")
        async with running_demo(Path(data) / "demo", *options) as demo:
            names = await demo.exports()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(headers=auth, timeout=10) as http:
                for action in ("takeover", "restore"):
                    answer = await http.post(f"{names['API']}/edges/{names['EDGE']}/{action}")
                    answer.raise_for_status()
            await asyncio.to_thread(photograph, names)
            demo.process.send_signal(signal.SIGINT)
            await demo.read_until("demo stopped")
    print(f"wrote {OUTPUT}")
    return 0


def photograph(names: dict[str, str]) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    master = names["API"].removesuffix("/api")
    with browser.chromium(window=(1200, 900)) as driver:
        driver.get(f"{master}/")
        driver.find_element("id", "token").send_keys(TOKEN)
        driver.find_element("id", "sign-in-button").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements("css selector", "[data-field=controller]")
        )
        os.kill(int((Path(names["DEMO"]) / "edge.pid").read_text()), signal.SIGKILL)
        WebDriverWait(driver, 30).until(
            lambda d: "Failover in 1" in d.find_element("css selector", "[data-countdown]").text
        )
        OUTPUT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(OUTPUT))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
