"""The events an edge pushes to the master about its modules (DESIGN §6), validated.

A peer is trusted only as far as its own location: the master checks both the shape
of each event and that the module belongs to the edge that sent it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _ModuleEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    module_id: str = Field(min_length=1)


class StatusChanged(_ModuleEvent):
    event: Literal["status"]
    name: str = Field(min_length=1)
    value: Any = None


class ModuleState(_ModuleEvent):
    event: Literal["module.state"]
    state: dict[str, Any] = {}
    funcs: dict[str, dict[str, Any]] = {}


class DebugLine(_ModuleEvent):
    event: Literal["debug"]
    level: str = "info"
    msg: str = ""


ModuleEvent = StatusChanged | ModuleState | DebugLine
_ADAPTER: TypeAdapter[ModuleEvent] = TypeAdapter(ModuleEvent)


class BadEvent(ValueError):
    """An event that is not one of the module events, or not well formed."""


def parse_module_event(event: str, fields: dict[str, Any]) -> ModuleEvent | None:
    """The module event named ``event``; None for other events; BadEvent if malformed."""
    if event not in ("status", "module.state", "debug"):
        return None
    try:
        return _ADAPTER.validate_python({**fields, "event": event})
    except ValidationError as exc:
        raise BadEvent(f"malformed {event!r} event: {exc.error_count()} error(s)") from None
