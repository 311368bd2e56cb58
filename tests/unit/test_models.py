"""The typed answers (app/models.py, API answers) name every field the server sends.

The models admit fields they do not name, so a field added to an answer reaches clients
at once; these tests make sure it is named in the model (and so in the OpenAPI document)
as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from app.master.recorder import Unrecorded
from app.models import (
    ControlDocument,
    ControlEvent,
    Health,
    PlaceSystem,
    Problem,
    Ready,
    StatusSnapshot,
)
from app.services.control import describe
from app.services.witness import WitnessReport
from app.store.base import Document
from tests.unit.routers.test_crud import create


def unnamed(model: type[BaseModel], data: Any) -> list[str]:
    """The fields of ``data`` that ``model`` does not name, anywhere inside it."""
    return list(_extras(model.model_validate(data), model.__name__))


def _extras(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from (f"{where}.{name}" for name in value.__pydantic_extra__ or {})
        for name in type(value).model_fields:
            yield from _extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extras(item, f"{where}[{index}]")


def test_a_full_control_document_is_named_field_by_field() -> None:
    now = datetime.now(UTC)
    edge = Document(
        "edge-1",
        "edge",
        "1",
        {"name": "Sydney", "window_start": "0 2 * * *", "window_length": 3600.0},
    )
    body = describe(
        edge,
        {"controller": "master", "epoch": 3, "online": False, "since": now.isoformat()},
        master_url="https://master.test",
        retry_after=4.5,
        link_error=("wrong proof (from 10.0.0.7)", now),
        witness=WitnessReport(now, "unreachable", "refused", now - timedelta(seconds=5)).as_json(),
        pending=Unrecorded("takeover", "the store refuses writes", now).as_json(),
        replication_error="a document too large for a link frame",
    )
    assert unnamed(ControlDocument, body) == []
    parsed = ControlDocument.model_validate(body)
    assert parsed.witness is not None and parsed.witness.result == "unreachable"
    assert parsed.pending is not None and parsed.next_restore_window is not None


async def test_the_masters_answers_are_named_field_by_field(api: httpx.AsyncClient) -> None:
    edge = await create(api, "/api/edges", {"name": "Away", "failover": False})
    await create(api, "/api/systems", {"name": "Far", "edge_control_id": edge["id"]})
    control = f"/api/edges/{edge['id']}"

    taken = await api.post(f"{control}/takeover")
    assert taken.status_code == 200, taken.text
    assert unnamed(ControlDocument, taken.json()) == []
    assert taken.json()["controller"] == "master"
    refused = await api.post(f"{control}/restore")
    assert refused.status_code == 409, refused.text
    assert unnamed(Problem, refused.json()) == []
    invalid = await api.patch(f"/api/edges/{edge['id']}", json={"timeout": 0, "tz": "x"})
    assert invalid.status_code == 422 and unnamed(Problem, invalid.json()) == []
    assert unnamed(ControlDocument, (await api.get(f"{control}/control")).json()) == []
    events = (await api.get(f"{control}/events")).json()
    assert events and all(unnamed(ControlEvent, event) == [] for event in events)
    assert unnamed(StatusSnapshot, (await api.get("/api/status")).json()) == []
    assert unnamed(Ready, (await api.get("/api/ready")).json()) == []
    assert unnamed(Health, (await api.get("/api/health")).json()) == []


async def test_the_placeos_answers_are_named_field_by_field(api: httpx.AsyncClient) -> None:
    driver = await create(
        api,
        "/api/drivers",
        {"name": "Line", "file": "generic/tcp_line.py", "class_name": "TcpLine"},
    )
    system = await create(api, "/api/systems", {"name": "Huddle", "settings": {"a": 1}})
    await create(
        api,
        "/api/modules",
        {
            "driver_id": driver["id"],
            "name": "Display",
            "ip": "127.0.0.1",
            "port": 9,
            "system_id": system["id"],
        },
    )
    v2 = "/api/engine/v2/systems"
    shown = (await api.get(f"{v2}/{system['id']}", params={"complete": "true"})).json()
    assert shown["module_data"] and unnamed(PlaceSystem, shown) == []
    listed = (await api.get(v2)).json()
    assert listed and all(unnamed(PlaceSystem, item) == [] for item in listed)
