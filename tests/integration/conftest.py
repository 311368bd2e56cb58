"""Integration tests run real server processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from app.node_process import NodeProcess
from tests.integration.rooms import Rooms
from tests.integration.sites import Site, open_site
from tests.support.engine import ADMIN_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[NodeProcess]:
    """A master process on its own embedded store, with an admin token."""
    process = NodeProcess(
        "master", tmp_path / "master", settings={"ENGINE_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
async def client(master: NodeProcess) -> AsyncIterator[httpx.AsyncClient]:
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
