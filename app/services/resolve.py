"""What a runtime request names, resolved to what can answer it, or a clear error why not.

The REST routes and the client websocket address modules by id and by system, name
and index. The runtime alone can only say "not here"; the store tells a module that
does not exist (404) from one this server does not run (409) and a system the
runtime has not picked up yet (503, try again) — the answers a client can act on.
"""

from __future__ import annotations

from app.errors import Conflict, NotFound, Unavailable, UnknownModule, UnknownSystem
from app.runtime.handle import ModuleHandle
from app.runtime.manager import ModuleManager
from app.runtime.systems import Systems
from app.services.catalog import MODULE, SYSTEM, Catalog, Kind
from app.services.modules import ModuleService

#: Seconds a client should wait for the runtime to catch up with a new system.
SYSTEM_LOAD_RETRY_S = 1.0


class RuntimeTargets:
    """Finds the modules and systems runtime requests are about."""

    def __init__(self, catalog: Catalog, modules: ModuleService) -> None:
        self._catalog = catalog
        self._modules = modules

    @property
    def _manager(self) -> ModuleManager:
        return self._modules.manager

    @property
    def systems(self) -> Systems:
        return self._manager.systems

    async def module(self, module_id: str) -> ModuleHandle:
        """The module as this server reaches it: loaded here or, on the master, an edge's proxy."""
        handle = self._manager.find(module_id)
        if handle is None:
            raise await self._not_loaded(module_id)
        return handle

    def reachable(self, module_id: str) -> ModuleHandle | None:
        """The module's handle when this server reaches it now, else None."""
        return self._manager.find(module_id)

    async def system_module(self, system_id: str, name: str, index: int = 1) -> ModuleHandle:
        """Module ``name_index`` of a system; ``UnknownSystem`` or ``UnknownModule`` if missing."""
        await self.ensure_known_system(system_id)
        try:
            return self.systems.handle(system_id, name, index)
        except NotFound as exc:
            raise UnknownModule(exc.detail) from None

    async def ensure_local_module(self, module_id: str) -> None:
        """The module is loaded on this server itself (the one that can start or stop it)."""
        if not self._manager.is_loaded(module_id):
            raise await self._not_loaded(module_id)

    async def ensure_known_system(self, system_id: str) -> None:
        """The runtime knows the system, so its modules resolve by name and index."""
        try:
            self.systems.get(system_id)
        except NotFound:
            raise await self._not_known(system_id) from None

    async def ensure_local_system(self, system_id: str) -> None:
        """This server controls the system's location now (to start or stop its modules)."""
        system = await self._catalog.get(SYSTEM, system_id)
        location = system.body.get("edge_control_id")
        if not self._modules.runs(location):
            where = f"edge {location}" if location else "the master"
            raise Conflict(
                f"system {system_id} is controlled by {where}, not by this server",
                system_id=system_id,
            )

    async def _not_loaded(self, module_id: str) -> Conflict:
        await self._exists(MODULE, module_id, UnknownModule)
        return Conflict(f"module {module_id} is not loaded on this server", module_id=module_id)

    async def _not_known(self, system_id: str) -> Unavailable:
        await self._exists(SYSTEM, system_id, UnknownSystem)
        return Unavailable(f"system {system_id} is not loaded yet", retry_after=SYSTEM_LOAD_RETRY_S)

    async def _exists(self, kind: Kind, doc_id: str, unknown: type[NotFound]) -> None:
        """Raise ``unknown`` when the store has no such document."""
        try:
            await self._catalog.get(kind, doc_id)
        except NotFound as exc:
            raise unknown(exc.detail) from None
