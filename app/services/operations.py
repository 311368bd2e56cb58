"""Runtime operations on the modules this server runs, shared by both roles.

The master calls them for its own modules from the REST API; an edge calls the same
ones when the master asks over the control link — one implementation, two callers.
"""

from __future__ import annotations

from typing import Protocol

from app.errors import InvalidField
from app.runtime.manager import ModuleManager
from app.runtime.reports import (
    DriverReloaded,
    ModuleDescription,
    ModuleStatus,
    ReloadFailed,
    RepositoryOutcome,
)
from app.runtime.repository import DriverRepository
from app.services.catalog import DRIVER, SYSTEM, Catalog
from app.services.modules import ModuleService


class ReloadFanout(Protocol):
    """Reloads a driver on the other servers that run it; returns what each said, or
    None where no other server reloads (an edge only reloads itself)."""

    async def __call__(
        self, driver_id: str, files: dict[str, str] | None
    ) -> dict[str, DriverReloaded | ReloadFailed] | None: ...


class Forwarder(Protocol):
    """Finds the edge that runs a module or system and passes a start or stop to it."""

    def edge_for_module(self, module_id: str) -> str | None: ...

    def edge_for_system(self, system_id: str) -> str | None: ...

    async def start_module(self, edge_id: str, module_id: str) -> ModuleDescription: ...

    async def stop_module(self, edge_id: str, module_id: str) -> ModuleDescription: ...

    async def start_system(self, edge_id: str, system_id: str) -> dict[str, str]:
        """The system's modules that did not start, with the reason."""
        ...

    async def stop_system(self, edge_id: str, system_id: str) -> None: ...


async def no_fanout(driver_id: str, files: dict[str, str] | None) -> None:
    """An edge reloads a driver only on itself."""


class NoForwarding:
    """An edge forwards nothing: every module it starts or stops runs on it."""

    def edge_for_module(self, module_id: str) -> str | None:
        return None

    def edge_for_system(self, system_id: str) -> str | None:
        return None

    async def start_module(self, edge_id: str, module_id: str) -> ModuleDescription:
        raise _forwards_nothing(edge_id)

    async def stop_module(self, edge_id: str, module_id: str) -> ModuleDescription:
        raise _forwards_nothing(edge_id)

    async def start_system(self, edge_id: str, system_id: str) -> dict[str, str]:
        raise _forwards_nothing(edge_id)

    async def stop_system(self, edge_id: str, system_id: str) -> None:
        raise _forwards_nothing(edge_id)


def _forwards_nothing(edge_id: str) -> AssertionError:
    return AssertionError(f"an edge forwards nothing (to edge {edge_id!r})")


class Operations:
    """Start, stop, inspect and reload what runs here; drive the driver repository.

    The master reloads a driver on its edges too (``fanout``) and starts and stops
    modules of link-only edges through their link (``forward``).
    """

    def __init__(
        self,
        catalog: Catalog,
        modules: ModuleService,
        repository: DriverRepository,
        *,
        fanout: ReloadFanout,
        forward: Forwarder,
    ) -> None:
        self._catalog = catalog
        self._modules = modules
        self._repository = repository
        self._fanout = fanout
        self._forward = forward

    @property
    def manager(self) -> ModuleManager:
        return self._modules.manager

    def forwards_module(self, module_id: str) -> bool:
        """Whether a start or stop of this module goes to an edge over its link."""
        return self._forward.edge_for_module(module_id) is not None

    def forwards_system(self, system_id: str) -> bool:
        return self._forward.edge_for_system(system_id) is not None

    async def start_module(self, module_id: str) -> ModuleDescription:
        if (edge := self._edge_for_module(module_id)) is not None:
            return await self._forward.start_module(edge, module_id)
        await self.manager.start(module_id)
        return self.manager.describe(module_id)

    async def stop_module(self, module_id: str) -> ModuleDescription:
        if (edge := self._edge_for_module(module_id)) is not None:
            return await self._forward.stop_module(edge, module_id)
        await self.manager.stop(module_id)
        return self.manager.describe(module_id)

    async def start_system(self, system_id: str) -> dict[str, str]:
        """Start the system's modules where they run; returns those that failed."""
        if (edge := self._edge_for_system(system_id)) is not None:
            return await self._forward.start_system(edge, system_id)
        return await self.manager.start_many(await self._local_modules(system_id))

    async def stop_system(self, system_id: str) -> None:
        if (edge := self._edge_for_system(system_id)) is not None:
            await self._forward.stop_system(edge, system_id)
            return
        await self.manager.stop_many(await self._local_modules(system_id))

    def _edge_for_module(self, module_id: str) -> str | None:
        return self._forward.edge_for_module(module_id)

    def _edge_for_system(self, system_id: str) -> str | None:
        return self._forward.edge_for_system(system_id)

    def status(self, module_ids: list[str] | None = None) -> dict[str, ModuleStatus]:
        """State, commands and lifecycle of loaded modules (all when ``module_ids`` is None)."""
        ids = self.manager.loaded_ids() if module_ids is None else module_ids
        described: dict[str, ModuleStatus] = {}
        for module_id in ids:
            if self.manager.is_loaded(module_id):
                handle = self.manager.handle(module_id)
                described[module_id] = {
                    **self.manager.describe(module_id),
                    "state": handle.state(),
                    "funcs": handle.funcs(),
                }
        return described

    async def repository(
        self, action: str, commit: str | None = None, reload: bool = False
    ) -> RepositoryOutcome:
        """``pull``, ``reset`` (to ``commit``) or ``status``; optionally reload drivers."""
        if action == "pull":
            head = await self._repository.pull()
        elif action == "reset":
            head = await self._repository.reset(commit)
        elif action == "status":
            status = await self._repository.status()
            head = self._repository.head()
            return {"commit": head, "branch": status["branch"], "dirty": status["dirty"]}
        else:
            raise InvalidField("action", f"must be pull, reset or status, not {action!r}")
        reloaded = await self._reload_running_drivers() if reload else []
        return {"commit": head, "reloaded": reloaded}

    async def reload_driver(
        self, driver_id: str, files: dict[str, str] | None = None
    ) -> DriverReloaded:
        """Load a driver's code afresh (after writing inline edits) and restart its modules."""
        driver = await self._catalog.get(DRIVER, driver_id)
        head = await self.manager.reload_driver(
            driver_id, str(driver.body["file"]), str(driver.body["class_name"]), files
        )
        restarted = [
            m
            for m in self.manager.loaded_ids()
            if self.manager.handle(m).spec.driver_id == driver_id
        ]
        result: DriverReloaded = {"commit": head, "modules": restarted}
        edges = await self._fanout(driver_id, files)
        if edges is not None:
            result["edges"] = edges
        return result

    async def _reload_running_drivers(self) -> list[str]:
        in_use = {self.manager.handle(m).spec.driver_id for m in self.manager.loaded_ids()}
        for driver_id in sorted(in_use):
            await self.reload_driver(driver_id)
        return sorted(in_use)

    async def _local_modules(self, system_id: str) -> list[str]:
        system = await self._catalog.get(SYSTEM, system_id)
        return [m for m in system.body.get("modules", ()) if self.manager.is_loaded(m)]
