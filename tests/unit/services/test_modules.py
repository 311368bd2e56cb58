"""The topology the runtime reads: documents it cannot read are left out, once logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.services.modules import (
    DRIVER_SHAPE,
    MODULE_SHAPE,
    SYSTEM_SHAPE,
    Locations,
    shape_problem,
)
from app.store.sqlite import SqliteStore
from tests.support.stores import opened


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(tmp_path / "engine.db") as store:
        yield store


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
