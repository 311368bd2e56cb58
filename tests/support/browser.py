"""Debian's headless Chromium, driven through chromedriver, cut off from all but loopback."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags for a quiet, reproducible browser that reaches nothing but loopback: every host
#: name but 127.0.0.1 fails to resolve, and anything not on loopback goes to a proxy
#: on a port where nothing listens.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1280,900",
)


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists() and shutil.which(Path(binary).name) is None:
            return f"{binary} is not installed (make test-deps installs it on Debian)"
    return None


@contextmanager
def chromium(window: tuple[int, int] = (1280, 900)) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="engine-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        options.add_argument(f"--user-data-dir={profile}")
        service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()
