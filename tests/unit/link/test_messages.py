from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from app.link.messages import (
    FRAME_ADAPTER,
    Challenge,
    Control,
    Event,
    Frame,
    Hello,
    Request,
    Response,
    Welcome,
)

NONCE = "a" * 64
PROOF = "b" * 64

WIRE_SHAPES: list[tuple[Frame, dict[str, Any]]] = [
    (Challenge(nonce=NONCE), {"type": "challenge", "nonce": NONCE}),
    (
        Hello(
            edge_id="edge-1",
            boot_time=1700000000.5,
            nonce=NONCE,
            proof=PROOF,
            devices_loaded=True,
            replica_seq=42,
            commit="abc123",
        ),
        {
            "type": "hello",
            "edge_id": "edge-1",
            "boot_time": 1700000000.5,
            "nonce": NONCE,
            "proof": PROOF,
            "devices_loaded": True,
            "replica_seq": 42,
            "commit": "abc123",
        },
    ),
    (
        Hello(
            edge_id="edge-1",
            boot_time=1.5,
            nonce=NONCE,
            proof=PROOF,
            devices_loaded=False,
            replica_seq=0,
            instance_id="0123456789abcdef",
        ),
        {
            "type": "hello",
            "edge_id": "edge-1",
            "boot_time": 1.5,
            "nonce": NONCE,
            "proof": PROOF,
            "devices_loaded": False,
            "replica_seq": 0,
            "commit": None,
            "instance_id": "0123456789abcdef",
        },
    ),
    (
        Welcome(proof=PROOF, master_booting=False, epoch=3),
        {"type": "welcome", "proof": PROOF, "master_booting": False, "epoch": 3},
    ),
    (
        Control(controller="edge", epoch=4),
        {"type": "control", "controller": "edge", "epoch": 4, "reason": ""},
    ),
    (
        Request(id=1, op="exec", args={"method": "power", "args": [True]}),
        {"type": "request", "id": 1, "op": "exec", "args": {"method": "power", "args": [True]}},
    ),
    (
        Response.success(1, {"power": True}),
        {"type": "response", "id": 1, "ok": True, "result": {"power": True}},
    ),
    (Response.success(2, None), {"type": "response", "id": 2, "ok": True, "result": None}),
    (
        Response.failure(3, "NotFound", "no module"),
        {
            "type": "response",
            "id": 3,
            "ok": False,
            "error": {"code": "NotFound", "message": "no module"},
        },
    ),
    (
        Event(event="status", module="Display_1", name="power", value=True),
        {"type": "event", "event": "status", "module": "Display_1", "name": "power", "value": True},
    ),
]


@pytest.mark.parametrize(("frame", "wire"), WIRE_SHAPES)
def test_frames_have_the_contract_wire_shape_and_round_trip(
    frame: Frame, wire: dict[str, Any]
) -> None:
    assert json.loads(frame.model_dump_json()) == wire
    assert FRAME_ADAPTER.validate_python(wire) == frame


def test_event_payload_sits_beside_the_event_name() -> None:
    event = FRAME_ADAPTER.validate_json('{"type":"event","event":"debug","level":"info"}')

    assert isinstance(event, Event)
    assert event.event == "debug"
    assert event.fields == {"level": "info"}


def test_event_without_payload_has_no_fields() -> None:
    assert Event(event="ready").fields == {}


@pytest.mark.parametrize(
    "wire",
    [
        {"type": "response", "id": 1, "ok": True, "error": {"code": "x", "message": "y"}},
        {"type": "response", "id": 1, "ok": False},
        {"type": "response", "id": 1, "ok": "yes", "result": 1},
        {"type": "request", "id": "1", "op": "exec", "args": {}},
        {"type": "challenge", "nonce": "short"},
        {"type": "challenge", "nonce": "A" * 64},
        {"type": "control", "controller": "both", "epoch": 1},
        {"type": "welcome", "proof": PROOF, "master_booting": False, "epoch": -1},
    ],
)
def test_inconsistent_or_loosely_typed_frames_are_rejected(wire: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FRAME_ADAPTER.validate_python(wire)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = FRAME_ADAPTER.validate_python({"type": "challenge", "nonce": NONCE, "v": 2})

    assert frame == Challenge(nonce=NONCE)


def test_hello_accepts_an_integer_boot_time_and_a_missing_commit() -> None:
    hello = FRAME_ADAPTER.validate_json(
        json.dumps(
            {
                "type": "hello",
                "edge_id": "e",
                "boot_time": 1700000000,
                "nonce": NONCE,
                "proof": PROOF,
                "devices_loaded": False,
                "replica_seq": 0,
            }
        )
    )

    assert isinstance(hello, Hello)
    assert hello.boot_time == 1700000000.0
    assert hello.commit is None
