"""The module manager: which modules run on this server, and their driver code.

It loads driver classes from the repository, keeps one :class:`LocalModule` per
loaded module, starts and stops them in role order (devices, then services, then
logic; the reverse to stop) and swaps in new driver code on a live reload. Modules
other servers control are reached through the ``lookup`` hook, so system-level
calls and logic drivers resolve local and remote modules alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.errors import EngineError, NotFound
from app.runtime.driver import Driver, Role
from app.runtime.handle import ModuleHandle, ModuleLookup
from app.runtime.loader import load_driver_class
from app.runtime.module import LocalModule
from app.runtime.reports import ModuleDescription
from app.runtime.repository import DriverRepository
from app.runtime.spec import ModuleSpec, SystemSpec
from app.runtime.systems import Systems

logger = logging.getLogger(__name__)

START_ORDER: tuple[Role, ...] = ("device", "service", "logic")


@dataclass(frozen=True)
class _LoadedDriver:
    file: str
    class_name: str
    driver_class: type[Driver]

    def matches(self, spec: ModuleSpec) -> bool:
        return (self.file, self.class_name) == (spec.file, spec.class_name)


class ModuleManager:
    """Loads, runs and reloads the modules of this server."""

    def __init__(
        self,
        repository: DriverRepository,
        *,
        exec_timeout: float = 10.0,
        hook_timeout: float = 10.0,
        lookup: ModuleLookup | None = None,
    ) -> None:
        self.repository = repository
        #: Finds modules this server does not run (proxies for remote ones).
        self.lookup = lookup
        self._exec_timeout = exec_timeout
        self._hook_timeout = hook_timeout
        self._modules: dict[str, LocalModule] = {}
        self._drivers: dict[str, _LoadedDriver] = {}
        self.systems = Systems(self.find, exec_timeout=exec_timeout)

    # --- finding modules -----------------------------------------------------------

    def find(self, module_id: str) -> ModuleHandle | None:
        """The module's handle: the local one if loaded here, else what ``lookup`` finds."""
        local = self._modules.get(module_id)
        if local is not None:
            return local
        return self.lookup(module_id) if self.lookup is not None else None

    def handle(self, module_id: str) -> LocalModule:
        """The module loaded on this server; ``NotFound`` if it is not."""
        module = self._modules.get(module_id)
        if module is None:
            raise NotFound(f"module {module_id} is not loaded on this server")
        return module

    def is_loaded(self, module_id: str) -> bool:
        return module_id in self._modules

    def is_running(self, module_id: str) -> bool:
        module = self._modules.get(module_id)
        return module is not None and module.running

    def loaded_ids(self) -> list[str]:
        return list(self._modules)

    def running_ids(self) -> list[str]:
        return [module.id for module in self._modules.values() if module.running]

    def describe(self, module_id: str) -> ModuleDescription:
        """What the engine knows of a loaded module beyond its status."""
        module = self.handle(module_id)
        spec = module.spec
        return {
            "id": spec.id,
            "name": spec.name,
            "driver_id": spec.driver_id,
            "role": spec.role,
            "running": module.running,
            "error": module.error,
        }

    # --- lifecycle -----------------------------------------------------------------

    async def load(self, spec: ModuleSpec) -> None:
        """Load a module (stopped). An already loaded module takes ``spec`` as an update.

        Raises ``DriverLoadError`` when the code cannot be loaded (nothing is loaded
        then) and ``DriverFailed`` when ``on_load`` raises (the module stays loaded,
        stopped, with the error recorded).
        """
        if spec.id in self._modules:
            await self.update(spec)
            return
        module = LocalModule(
            spec,
            self._driver_class(spec),
            bind_system=self.systems.bind,
            exec_timeout=self._exec_timeout,
            hook_timeout=self._hook_timeout,
        )
        self._modules[spec.id] = module
        await module.load()

    async def update(self, spec: ModuleSpec) -> None:
        """Apply a changed module: new settings or address in place, new code by a swap."""
        module = self._modules.get(spec.id)
        if module is None:
            await self.load(spec)
        elif module.spec.same_driver(spec):
            await module.update(spec)
        else:
            await module.replace_driver(self._driver_class(spec), spec)

    async def start(self, module_id: str) -> None:
        """Start a loaded module; ``DriverFailed`` when its ``on_start`` raises."""
        await self.handle(module_id).start()

    async def stop(self, module_id: str) -> None:
        await self.handle(module_id).stop()

    async def unload(self, module_id: str) -> None:
        """Stop the module and forget it; its subscribers hear nothing more."""
        module = self._modules.pop(module_id, None)
        if module is not None:
            await module.unload()

    async def start_many(self, module_ids: Iterable[str]) -> dict[str, str]:
        """Start modules, devices first, then services, then logic.

        One module failing does not keep the others from starting: the result maps
        each module that did not start to the reason.
        """
        return await self._in_tiers(module_ids, START_ORDER, LocalModule.start)

    async def stop_many(self, module_ids: Iterable[str]) -> None:
        """Stop modules in the reverse order: logic, then services, then devices."""
        await self._in_tiers(module_ids, START_ORDER[::-1], LocalModule.stop)

    async def stop_all(self) -> None:
        await self.stop_many(self.running_ids())

    async def _in_tiers(
        self,
        module_ids: Iterable[str],
        order: Sequence[Role],
        action: Callable[[LocalModule], Awaitable[None]],
    ) -> dict[str, str]:
        """Apply ``action`` to the modules of each role in turn, a role's modules at once."""
        failures: dict[str, str] = {}
        modules: list[LocalModule] = []
        for module_id in dict.fromkeys(module_ids):
            module = self._modules.get(module_id)
            if module is None:
                failures[module_id] = f"module {module_id} is not loaded on this server"
            else:
                modules.append(module)
        for role in order:
            tier = [module for module in modules if module.spec.role == role]
            results = await asyncio.gather(
                *(action(module) for module in tier), return_exceptions=True
            )
            for module, result in zip(tier, results, strict=True):
                if isinstance(result, EngineError):
                    failures[module.id] = result.detail
                elif isinstance(result, BaseException):
                    raise result
        return failures

    # --- calls ---------------------------------------------------------------------

    async def exec(
        self,
        module_id: str,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.handle(module_id).exec(method, args, kwargs, timeout)

    def state(self, module_id: str) -> dict[str, Any]:
        return self.handle(module_id).state()

    def funcs(self, module_id: str) -> dict[str, dict[str, Any]]:
        return self.handle(module_id).funcs()

    # --- systems -------------------------------------------------------------------

    def set_systems(self, specs: Iterable[SystemSpec]) -> None:
        self.systems.replace(specs)

    def upsert_system(self, spec: SystemSpec) -> None:
        self.systems.upsert(spec)

    def remove_system(self, system_id: str) -> None:
        self.systems.remove(system_id)

    # --- driver code ---------------------------------------------------------------

    async def reload_driver(
        self, driver_id: str, file: str, class_name: str, files: dict[str, str] | None = None
    ) -> str:
        """Load a driver's code afresh and restart its running modules with it.

        ``files`` (inline edits) are written to the repository first. When the new
        code does not load, the files are put back as they were, ``DriverLoadError``
        propagates and the modules keep running the old code. A module whose restart
        fails is left stopped with the error recorded (see :meth:`describe`). Returns
        the repository's HEAD.
        """
        previous = await self.repository.write_files(files) if files else {}
        try:
            driver_class = load_driver_class(self.repository.path, file, class_name)
        except Exception:
            # An edit that does not load is not kept: a later start would fail on it.
            await self.repository.restore(previous)
            raise
        self._drivers[driver_id] = _LoadedDriver(file, class_name, driver_class)
        modules = [m for m in self._modules.values() if m.spec.driver_id == driver_id]
        results = await asyncio.gather(
            *(
                module.replace_driver(
                    driver_class, replace(module.spec, file=file, class_name=class_name)
                )
                for module in modules
            ),
            return_exceptions=True,
        )
        for module, result in zip(modules, results, strict=True):
            if isinstance(result, EngineError):
                logger.warning("module %s did not restart after reload: %s", module.id, result)
            elif isinstance(result, BaseException):
                raise result
        return self.repository.head()

    def _driver_class(self, spec: ModuleSpec) -> type[Driver]:
        """The driver's class, loaded once per driver until its file or class changes."""
        loaded = self._drivers.get(spec.driver_id)
        if loaded is None or not loaded.matches(spec):
            loaded = _LoadedDriver(
                spec.file,
                spec.class_name,
                load_driver_class(self.repository.path, spec.file, spec.class_name),
            )
            self._drivers[spec.driver_id] = loaded
        return loaded.driver_class

    # --- handover ------------------------------------------------------------------

    async def status_snapshot(self, module_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The last status of each loaded module among ``module_ids``."""
        return {
            module_id: self._modules[module_id].state()
            for module_id in module_ids
            if module_id in self._modules
        }

    async def restore_status(self, module_id: str, values: Mapping[str, Any]) -> None:
        """Give a loaded, stopped module the status its previous controller left."""
        await self.handle(module_id).restore_status(values)
