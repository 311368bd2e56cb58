"""The module runtime: drivers, the modules running them, and the code they come from.

Integrators import :class:`Driver` (or :class:`DeviceDriver`) from here; the engine
uses :class:`ModuleManager`, :class:`DriverRepository` and :class:`ModuleHandle`.

Imports only ``app.errors`` of the rest of the engine: the runtime knows nothing of
roles, the store or the web stack.
"""

from __future__ import annotations

from app.runtime.device import DeviceDriver
from app.runtime.driver import Driver, ModuleContext, Role, SystemAccess
from app.runtime.handle import ModuleHandle, ModuleLookup
from app.runtime.loader import DriverLoadError, load_driver_class
from app.runtime.manager import START_ORDER, ModuleManager
from app.runtime.module import LocalModule
from app.runtime.repository import DriverRepository, RepositoryError
from app.runtime.spec import ModuleSpec, SystemSpec
from app.runtime.status import DebugStream, Status
from app.runtime.systems import SystemBinding, SystemIndex, Systems

__all__ = [
    "START_ORDER",
    "DebugStream",
    "DeviceDriver",
    "Driver",
    "DriverLoadError",
    "DriverRepository",
    "LocalModule",
    "ModuleContext",
    "ModuleHandle",
    "ModuleLookup",
    "ModuleManager",
    "ModuleSpec",
    "RepositoryError",
    "Role",
    "Status",
    "SystemAccess",
    "SystemBinding",
    "SystemIndex",
    "SystemSpec",
    "Systems",
    "load_driver_class",
]
