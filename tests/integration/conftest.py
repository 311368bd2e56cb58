"""Integration tests run real server processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.integration.rooms import Rooms
from tests.integration.sites import Site, open_site
from tests.support.engine import ADMIN_TOKEN, EngineProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def master(tmp_path: Path) -> Iterator[EngineProcess]:
    """A master process on its own embedded store, with an admin token."""
    process = EngineProcess("master", tmp_path / "master", env={"ENGINE_ADMIN_TOKEN": ADMIN_TOKEN})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def client(master: EngineProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's HTTP client of the ``master`` fixture, once it is ready."""
    await master.wait_ready()
    async with httpx.AsyncClient(
        base_url=master.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    ) as http:
        yield http


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A master serving TLS (see :mod:`tests.integration.sites`); modules may override it."""
    async with open_site(tmp_path) as site:
        yield site


@pytest.fixture
async def rooms(site: Site) -> AsyncIterator[Rooms]:
    """Edge locations, each driving its own simulated device, added to ``site``."""
    async with AsyncExitStack() as stack:
        yield Rooms(site, stack)
