"""Integration tests run real server processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

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
