"""Which modules run where: the topology the runtime reads (documents it cannot read
are left out, once logged), and a handover reconciling its own location only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.node import Services
from app.services.modules import (
    DRIVER_SHAPE,
    MODULE_SHAPE,
    SYSTEM_SHAPE,
    Locations,
    ModuleService,
    shape_problem,
)
from app.settings import Settings
from app.store.base import JsonObject
from app.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("body", "shape", "problem"),
    [
        ({"name": "Room", "modules": ["m1"]}, SYSTEM_SHAPE, None),
        ({"modules": [], "edge_control_id": None, "settings": {}}, SYSTEM_SHAPE, None),
        ({"name": "Room"}, SYSTEM_SHAPE, "'modules' is missing"),
        ({"modules": "m1"}, SYSTEM_SHAPE, "'modules' is a str"),
        ({"modules": ["m1", 2]}, SYSTEM_SHAPE, "'modules' holds something other than module ids"),
        ({"modules": [], "edge_control_id": 5}, SYSTEM_SHAPE, "'edge_control_id' is a int"),
        ({"modules": [], "settings": []}, SYSTEM_SHAPE, "'settings' is a list"),
        ({"driver_id": "d", "name": "Display"}, MODULE_SHAPE, None),
        ({"name": "Display"}, MODULE_SHAPE, "'driver_id' is missing"),
        ({"file": "a.py", "class_name": "A"}, DRIVER_SHAPE, None),
        ({"file": None, "class_name": "A"}, DRIVER_SHAPE, "'file' is a NoneType"),
    ],
)
def test_shape_problem(body: dict[str, Any], shape: Any, problem: str | None) -> None:
    assert shape_problem(body, shape) == problem


async def test_unreadable_documents_are_left_out_and_logged_once(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.insert("sys-good", "system", {"name": "Good", "modules": ["mod-good"]})
    await store.insert("sys-bare", "system", {"name": "Bare"})
    await store.insert("mod-good", "module", {"name": "Display", "driver_id": "drv"})
    await store.insert("mod-bad", "module", {"name": "Display"})
    await store.insert("drv", "driver", {"file": "echo.py", "class_name": "Echo"})
    locations = Locations(store)

    with caplog.at_level(logging.ERROR, logger="app.services.modules"):
        topology = await locations.topology()
        await locations.topology(fresh=True)

    assert set(topology.systems) == {"sys-good"}
    assert set(topology.modules) == {"mod-good"}
    assert topology.module_spec("mod-good") is not None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "the system 'sys-bare' cannot be run and is left out: 'modules' is missing",
        "the module 'mod-bad' cannot be run and is left out: 'driver_id' is missing",
    ]


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
