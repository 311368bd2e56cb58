"""Which modules run where: a handover reconciles its own location only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.node import Services
from app.services.modules import Locations, ModuleService
from app.settings import Settings
from app.store.base import JsonObject

ECHO = {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo"}


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'master.db'}",
        drivers_path=tmp_path / "drivers",
    )
    services = Services(settings)
    await services.store.open()
    await services.repository.ensure()  # the bundled drivers, Echo among them
    try:
        yield services
    finally:
        await services.close_clients()
        await services.store.close()


async def seed(services: Services, locations: list[str]) -> None:
    docs: list[tuple[str, str, JsonObject]] = [("drv-echo", "driver", dict(ECHO))]
    for n, location in enumerate(locations):
        docs += [
            (f"mod-{n}", "module", {"driver_id": "drv-echo", "name": "Echo"}),
            (
                f"sys-{n}",
                "system",
                {"name": location, "edge_control_id": location, "modules": [f"mod-{n}"]},
            ),
        ]
    await services.store.insert_many(docs)


async def test_taking_one_location_runs_its_modules_and_leaves_the_others_alone(
    services: Services,
) -> None:
    await seed(services, ["edge-a", "edge-b", "edge-c"])
    modules = ModuleService(services.manager(), Locations(services.store))
    await modules.reconcile()
    assert modules.manager.loaded_ids() == []
    await modules.take("edge-a")
    await modules.take("edge-b")
    assert sorted(modules.manager.running_ids()) == ["mod-0", "mod-1"]
    await modules.manager.stop("mod-0")  # stopped by hand: a later handover keeps it so
    await modules.take("edge-c")
    assert sorted(modules.manager.running_ids()) == ["mod-1", "mod-2"]
    assert sorted(modules.manager.loaded_ids()) == ["mod-0", "mod-1", "mod-2"]
    await modules.release("edge-b")
    await modules.reconcile()
    assert sorted(modules.manager.loaded_ids()) == ["mod-0", "mod-2"]
    assert sorted(modules.manager.running_ids()) == ["mod-2"]
