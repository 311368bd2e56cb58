"""Module events from an edge are validated before the master believes them."""

from __future__ import annotations

import pytest

from app.link.events import (
    BadEvent,
    DebugLine,
    ModuleState,
    StatusChanged,
    parse_module_event,
)


def test_each_module_event_parses() -> None:
    assert parse_module_event("status", {"module_id": "m", "name": "power", "value": 1}) == (
        StatusChanged(event="status", module_id="m", name="power", value=1)
    )
    state = parse_module_event("module.state", {"module_id": "m", "state": {"a": 1}})
    assert isinstance(state, ModuleState)
    assert state.funcs == {}
    debug = parse_module_event("debug", {"module_id": "m", "level": "error", "msg": "x"})
    assert isinstance(debug, DebugLine)


def test_other_events_are_not_module_events() -> None:
    assert parse_module_event("error", {"code": "bad_json"}) is None


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ("status", {"name": "power"}),
        ("status", {"module_id": "m"}),
        ("module.state", {"module_id": "m", "state": [1, 2]}),
        ("module.state", {"module_id": "m", "funcs": {"x": 5}}),
        ("debug", {"module_id": ""}),
    ],
)
def test_malformed_events_are_refused(event: str, fields: dict[str, object]) -> None:
    with pytest.raises(BadEvent, match=event):
        parse_module_event(event, fields)
