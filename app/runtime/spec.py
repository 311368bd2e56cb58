"""What the manager is asked to run: modules and control systems, as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.runtime.driver import Role


@dataclass(frozen=True)
class ModuleSpec:
    """One module and the driver it runs.

    ``driver_settings`` are the driver's defaults; the module's ``settings`` override
    them key by key. ``system_ids`` are the control systems holding the module, the
    first being the one a logic module works for.
    """

    id: str
    name: str
    driver_id: str
    file: str
    class_name: str
    role: Role
    ip: str | None = None
    port: int | None = None
    uri: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    system_ids: tuple[str, ...] = ()
    driver_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def merged_settings(self) -> dict[str, Any]:
        return {**self.driver_settings, **self.settings}

    @property
    def system_id(self) -> str | None:
        return self.system_ids[0] if self.system_ids else None

    def same_driver(self, other: ModuleSpec) -> bool:
        """Whether ``other`` runs the same driver code, so an update needs no new class."""
        return (self.driver_id, self.file, self.class_name) == (
            other.driver_id,
            other.file,
            other.class_name,
        )


@dataclass(frozen=True)
class SystemSpec:
    """A control system: an ordered list of module ids, addressed by name and index."""

    id: str
    name: str
    modules: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
