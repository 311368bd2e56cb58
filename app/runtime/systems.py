"""Control systems: addressing their modules by name and index (``Display_2``).

:class:`SystemIndex` is the pure part: which module id is ``(name, index)`` in a
system. :class:`Systems` applies it to module handles (state, funcs and exec of a
whole system) and gives logic drivers their :class:`SystemBinding`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import NotFound, Unavailable
from app.runtime.handle import ModuleHandle, ModuleLookup
from app.runtime.spec import SystemSpec
from app.runtime.status import StatusCallback, Unsubscribe


@dataclass(frozen=True)
class SystemIndex:
    """The modules of one system by ``(name, index)``, 1-based in system order.

    Numbering needs the name of every module before the one sought: after a module
    whose name is unknown (it is loaded nowhere), the index stops, ``unknown`` names
    that module and positions past it cannot be resolved. Guessing would send a
    command to the wrong device.
    """

    system_id: str
    positions: Mapping[tuple[str, int], str]
    unknown: str | None = None

    @classmethod
    def build(cls, system: SystemSpec, name_of: Callable[[str], str | None]) -> SystemIndex:
        positions: dict[tuple[str, int], str] = {}
        counts: dict[str, int] = {}
        for module_id in system.modules:
            name = name_of(module_id)
            if name is None:
                return cls(system.id, positions, unknown=module_id)
            counts[name] = counts.get(name, 0) + 1
            positions[(name, counts[name])] = module_id
        return cls(system.id, positions)

    def resolve(self, name: str, index: int = 1) -> str:
        """The id of module ``name_index``; ``NotFound`` or ``Unavailable`` if it cannot be."""
        module_id = self.positions.get((name, index))
        if module_id is not None:
            return module_id
        if self.unknown is not None:
            raise Unavailable(
                f"system {self.system_id}: module {self.unknown} is not loaded, "
                f"so {name}_{index} cannot be resolved",
                system_id=self.system_id,
                module_id=self.unknown,
            )
        raise NotFound(f"system {self.system_id} has no module {name}_{index}")

    def count(self, name: str) -> int:
        """How many modules are called ``name`` (of those before any unknown one)."""
        return sum(1 for known, _ in self.positions if known == name)

    def keys(self) -> dict[str, str]:
        """``{"Display_1": module_id, ...}`` in system order."""
        return {f"{name}_{index}": module_id for (name, index), module_id in self.positions.items()}


class Systems:
    """The control systems this server knows, resolved through module handles."""

    def __init__(self, find: ModuleLookup, *, exec_timeout: float | None = None) -> None:
        self._find = find
        self._exec_timeout = exec_timeout
        self._specs: dict[str, SystemSpec] = {}

    def replace(self, specs: Iterable[SystemSpec]) -> None:
        self._specs = {spec.id: spec for spec in specs}

    def upsert(self, spec: SystemSpec) -> None:
        self._specs[spec.id] = spec

    def remove(self, system_id: str) -> None:
        self._specs.pop(system_id, None)

    def get(self, system_id: str) -> SystemSpec:
        spec = self._specs.get(system_id)
        if spec is None:
            raise NotFound(f"no control system {system_id}")
        return spec

    def ids(self) -> list[str]:
        return list(self._specs)

    def index(self, system_id: str) -> SystemIndex:
        return SystemIndex.build(self.get(system_id), self._name_of)

    def handle(self, system_id: str, name: str, index: int = 1) -> ModuleHandle:
        module_id = self.index(system_id).resolve(name, index)
        handle = self._find(module_id)
        if handle is None:  # unloaded since the index was built
            raise Unavailable(f"module {module_id} of system {system_id} is not loaded")
        return handle

    def state(self, system_id: str) -> dict[str, dict[str, Any]]:
        """Every module's status variables, keyed ``Display_1``."""
        state: dict[str, dict[str, Any]] = {}
        for key, module_id in self.index(system_id).keys().items():
            handle = self._find(module_id)
            if handle is not None:
                state[key] = handle.state()
        return state

    def funcs(self, system_id: str, name: str, index: int = 1) -> dict[str, dict[str, Any]]:
        return self.handle(system_id, name, index).funcs()

    async def exec(
        self,
        system_id: str,
        name: str,
        index: int,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        handle = self.handle(system_id, name, index)
        return await handle.exec(method, args, kwargs, timeout or self._exec_timeout)

    def bind(self, system_id: str) -> SystemBinding:
        return SystemBinding(self, system_id)

    def _name_of(self, module_id: str) -> str | None:
        handle = self._find(module_id)
        return handle.name if handle is not None else None


class SystemBinding:
    """A logic module's view of its system (the :class:`~app.runtime.driver.SystemAccess`).

    Subscriptions made through it are remembered, so the engine drops them all
    when the module stops, even if the driver forgets to.
    """

    def __init__(self, systems: Systems, system_id: str) -> None:
        self._systems = systems
        self._system_id = system_id
        self._unsubscribes: list[Unsubscribe] = []

    @property
    def id(self) -> str:
        return self._system_id

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._systems.get(self._system_id).settings

    async def exec(self, module: str, index: int, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._systems.exec(self._system_id, module, index, method, args, kwargs)

    def count(self, module: str) -> int:
        return self._systems.index(self._system_id).count(module)

    def status(self, module: str, index: int, name: str) -> Any:
        return self._systems.handle(self._system_id, module, index).state().get(name)

    def subscribe(self, module: str, index: int, callback: StatusCallback) -> Unsubscribe:
        unsubscribe = self._systems.handle(self._system_id, module, index).subscribe_status(
            callback
        )
        self._unsubscribes.append(unsubscribe)
        return unsubscribe

    def release(self) -> None:
        """Drop every subscription made through this binding."""
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()
