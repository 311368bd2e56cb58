"""Which modules this server runs, reconciled from the documents in its store.

A server controls a set of *locations* — ``None`` for the master's own systems, an
edge id for an edge's. The modules it should run are those of the systems in those
locations (the seed's map-reduce over ``edge_control_id``). Rather than patching the
runtime change by change, :meth:`ModuleService.reconcile` compares that desired set
with what is loaded and closes the gap, so a configuration change, a replica catch-up
or a handover all end in the same, correct state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app.runtime.manager import ModuleManager
from app.runtime.spec import ModuleSpec, SystemSpec
from app.store.base import Document, Store

log = logging.getLogger(__name__)

#: The master's own location: systems without an ``edge_control_id``.
MASTER_LOCATION: str | None = None
#: The document types a :class:`Topology` is read from: a write of any other type
#: leaves the modules to run as they are.
TOPOLOGY_TYPES = frozenset({"system", "module", "driver"})


@dataclass(frozen=True)
class Topology:
    """Systems, modules and drivers as the store holds them now."""

    systems: Mapping[str, Document]
    modules: Mapping[str, Document]
    drivers: Mapping[str, Document]

    def location_of_system(self, system_id: str) -> str | None:
        system = self.systems.get(system_id)
        return system.body.get("edge_control_id") if system else None

    def systems_of(self, module_id: str) -> list[str]:
        return self._holders.get(module_id, [])

    @cached_property
    def _holders(self) -> dict[str, list[str]]:
        """Each module's systems, built once: a lookup per module must not scan them all."""
        holders: dict[str, list[str]] = {}
        for system in self.systems.values():
            for module_id in system.body["modules"]:
                holders.setdefault(module_id, []).append(system.id)
        return holders

    @cached_property
    def module_locations(self) -> dict[str, str | None]:
        """Each module held by a system, with its location (a module sits in one)."""
        located: dict[str, str | None] = {}
        for system in self.systems.values():
            for module_id in system.body["modules"]:
                located.setdefault(module_id, system.body.get("edge_control_id"))
        return located

    def modules_in(self, locations: Iterable[str | None]) -> list[str]:
        wanted = set(locations)
        return [m for m, where in self.module_locations.items() if where in wanted]

    def system_specs(self) -> list[SystemSpec]:
        return [
            SystemSpec(
                id=doc.id,
                name=str(doc.body.get("name", "")),
                modules=tuple(doc.body["modules"]),
                settings=doc.body.get("settings", {}),
            )
            for doc in self.systems.values()
        ]

    def module_spec(self, module_id: str) -> ModuleSpec | None:
        """The runnable spec of a module, or None when it or its driver is missing."""
        module = self.modules.get(module_id)
        driver = self.drivers.get(module.body["driver_id"]) if module else None
        if module is None or driver is None:
            return None
        body, code = module.body, driver.body
        return ModuleSpec(
            id=module.id,
            name=str(body["name"]),
            driver_id=driver.id,
            file=str(code["file"]),
            class_name=str(code["class_name"]),
            role=code.get("role", "device"),
            ip=body.get("ip"),
            port=body.get("port"),
            uri=body.get("uri"),
            settings=body.get("settings", {}),
            system_ids=tuple(self.systems_of(module_id)),
            driver_settings=code.get("settings", {}),
        )


#: The fields the runtime reads from each kind of document, with the types it needs.
#: The API writes nothing else, but a document written past it (another backend, an
#: older version, a hand edit of the database) must cost only itself, not the server.
SYSTEM_SHAPE: Mapping[str, tuple[type, ...]] = {
    "modules": (list,),
    "edge_control_id": (str, type(None)),
    "settings": (dict,),
}
MODULE_SHAPE: Mapping[str, tuple[type, ...]] = {"driver_id": (str,), "name": (str,)}
DRIVER_SHAPE: Mapping[str, tuple[type, ...]] = {"file": (str,), "class_name": (str,)}
_OPTIONAL = frozenset({"edge_control_id", "settings"})


def shape_problem(body: Mapping[str, Any], shape: Mapping[str, tuple[type, ...]]) -> str | None:
    """Why the runtime cannot read a document of this ``shape``, or None."""
    for name, types in shape.items():
        if name not in body:
            if name in _OPTIONAL:
                continue
            return f"{name!r} is missing"
        if not isinstance(body[name], types):
            return f"{name!r} is a {type(body[name]).__name__}"
    modules = body.get("modules")
    if isinstance(modules, list) and not all(isinstance(m, str) for m in modules):
        return "'modules' holds something other than module ids"
    return None


class Locations:
    """What runs where: the store's topology as last read, and the locations this server
    controls. Shared by the module service and, on the master, the remote-module proxies.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._topology: Topology | None = None
        self.controlled: set[str | None] = set()
        #: (id, version) of unusable documents already logged: one line each, not per read.
        self._reported: set[tuple[str, str]] = set()

    async def topology(self, *, fresh: bool = False) -> Topology:
        """The store's systems, modules and drivers (cached until the next change)."""
        if self._topology is None or fresh:
            systems, modules, drivers = await asyncio.gather(
                self._store.find("system"), self._store.find("module"), self._store.find("driver")
            )
            self._topology = Topology(
                systems=self._usable(systems.items, SYSTEM_SHAPE),
                modules=self._usable(modules.items, MODULE_SHAPE),
                drivers=self._usable(drivers.items, DRIVER_SHAPE),
            )
        return self._topology

    def _usable(
        self, docs: Iterable[Document], shape: Mapping[str, tuple[type, ...]]
    ) -> dict[str, Document]:
        """The documents the runtime can read; one it cannot is logged (once) and left out."""
        usable: dict[str, Document] = {}
        for doc in docs:
            problem = shape_problem(doc.body, shape)
            if problem is None:
                usable[doc.id] = doc
            elif (doc.id, doc.version) not in self._reported:
                self._reported.add((doc.id, doc.version))
                log.error("the %s %r cannot be run and is left out: %s", doc.type, doc.id, problem)
        return usable

    @property
    def cached_topology(self) -> Topology | None:
        """The topology as last read, for synchronous lookups; None before the first read."""
        return self._topology

    def runs(self, location: str | None) -> bool:
        return location in self.controlled


class ModuleService:
    """Runs exactly the modules of the locations this server controls."""

    def __init__(self, manager: ModuleManager, locations: Locations) -> None:
        self.manager = manager
        self._locations = locations
        self._controlled = locations.controlled
        self._lock = asyncio.Lock()
        #: Each loaded module's ``running`` flag as last reconciled: a stopped module
        #: starts again only when its flag turns on, not at every reconcile.
        self._flags: dict[str, bool] = {}
        self._moved: list[Callable[[str | None], None]] = []
        #: The topology the manager's systems were last set from.
        self._systems_of: Topology | None = None

    def on_location_moved(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Hear when this server starts or stops running a location (a handover)."""
        self._moved.append(callback)
        return lambda: self._moved.remove(callback) if callback in self._moved else None

    def _announce_move(self, location: str | None) -> None:
        for callback in list(self._moved):
            try:
                callback(location)
            except Exception:
                log.exception("a location-moved listener failed")

    @property
    def controlled(self) -> frozenset[str | None]:
        return frozenset(self._controlled)

    async def topology(self, *, fresh: bool = False) -> Topology:
        """The store's systems, modules and drivers (cached until the next change)."""
        return await self._locations.topology(fresh=fresh)

    @property
    def cached_topology(self) -> Topology | None:
        """The topology as last read, for synchronous lookups; None before the first read."""
        return self._locations.cached_topology

    async def take(
        self, location: str | None, *, status: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, str]:
        """Start running a location's modules, seeding them with ``status`` first."""
        async with self._lock:
            self._controlled.add(location)
            failures = await self._reconcile(status or {}, only=location)
        self._announce_move(location)
        return failures

    async def release(self, location: str | None) -> dict[str, dict[str, Any]]:
        """Stop and unload a location's modules; returns their last status."""
        async with self._lock:
            self._controlled.discard(location)
            topology = await self.topology()
            ids = [m for m in topology.modules_in([location]) if self.manager.is_loaded(m)]
            snapshot = await self.manager.status_snapshot(ids)
            await self._unload(ids)
        self._announce_move(location)
        return snapshot

    async def reconcile(self) -> dict[str, str]:
        """Bring the runtime in line with the store after a change."""
        async with self._lock:
            await self.topology(fresh=True)
            return await self._reconcile({})

    def runs(self, location: str | None) -> bool:
        return self._locations.runs(location)

    async def _reconcile(
        self, status: Mapping[str, Mapping[str, Any]], *, only: str | None = None
    ) -> dict[str, str]:
        """Load, start, update, stop and unload modules to match the topology: of every
        location this server controls, or ``only`` of the location given by name (a
        handover: the others are as the last full reconcile left them, and a mass
        failover of a thousand locations must not go over all of them a thousand times).
        The master's own location is None: it is reconciled with all the others."""
        topology = await self.topology()
        if topology is not self._systems_of:
            self.manager.set_systems(topology.system_specs())
            self._systems_of = topology
        scoped = only is not None
        locations = {only} & self._controlled if scoped else self._controlled
        desired: dict[str, ModuleSpec] = {}
        for module_id in topology.modules_in(locations):
            spec = topology.module_spec(module_id)
            if spec is not None:
                desired[module_id] = spec
        loaded = set(self.manager.loaded_ids())
        # Out of scope: modules of the other locations (a module in no system runs nowhere).
        located = topology.module_locations
        await self._unload(
            [
                m
                for m in loaded
                if m not in desired and (not scoped or located.get(m, only) in locations)
            ]
        )

        failures: dict[str, str] = {}
        to_start: list[str] = []
        for module_id, spec in desired.items():
            should_run = bool(topology.modules[module_id].body.get("running", True))
            try:
                if module_id not in loaded:
                    await self.manager.load(spec)
                    if module_id in status:
                        await self.manager.restore_status(module_id, status[module_id])
                    if should_run:
                        to_start.append(module_id)
                    continue
                if self.manager.handle(module_id).spec != spec:
                    await self.manager.update(spec)
            except Exception as exc:  # one broken module must not stop the others
                log.warning("module %s could not be loaded: %s", module_id, exc)
                failures[module_id] = str(exc)
                continue
            running = self.manager.is_running(module_id)
            if should_run and not running and self._flags.get(module_id) is False:
                to_start.append(module_id)
            elif not should_run and running:
                await self.manager.stop(module_id)
        failures.update(await self.manager.start_many(to_start))
        flags = {m: bool(topology.modules[m].body.get("running", True)) for m in desired}
        if scoped:
            self._flags.update(flags)
        else:
            self._flags = flags
        return failures

    async def _unload(self, module_ids: list[str]) -> None:
        if not module_ids:
            return
        await self.manager.stop_many(module_ids)
        for module_id in module_ids:
            await self.manager.unload(module_id)
