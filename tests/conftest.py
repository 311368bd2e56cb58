"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import compose, create_app
from app.node import Node
from app.settings import Settings
from tests.support.wait import wait_until

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        admin_token=ADMIN_TOKEN,
        drivers_path=tmp_path / "drivers",
        public_url="http://master.test",
    )


@pytest.fixture
def node(settings: Settings) -> Node:
    return compose(settings)


@pytest.fixture
async def api(settings: Settings, node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of an in-process master (lifespan run by hand)."""
    app = create_app(settings, node=node)
    await node.start()
    await wait_until(lambda: node.boot.ready, timeout=10, message="the master to boot")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://master.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as client:
            yield client
    finally:
        await node.stop()
