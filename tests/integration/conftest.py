"""Integration tests run real server processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.node_process import NodeProcess
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
