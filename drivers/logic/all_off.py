"""Room logic: switch off every display (or any kind of module) of the system at once."""

from __future__ import annotations

import asyncio
from typing import Any

from app.errors import EngineError
from app.runtime import Driver, SystemAccess


class AllOff(Driver):
    """Calls one method on every module of a kind in its control system.

    Settings: ``target`` (module name, default ``Display``), ``method`` (default
    ``power``), ``args`` (default ``[false]``) and ``watch`` (the status variable
    counted as "on", default ``power``).
    Status: ``<watch>_count``, how many targets report ``watch`` as true
    (``power_count`` by default; ``connected_count`` when watching ``connected``).
    """

    async def on_start(self) -> None:
        system = self._system()
        for index in self._indices():
            try:
                system.subscribe(self._target(), index, self._changed)
            except EngineError as exc:
                self.logger.warning("cannot watch %s_%d: %s", self._target(), index, exc)
        self._count_on()

    async def all_off(self) -> int:
        """Call the method on every target; return how many succeeded."""
        method = self.setting("method", "power")
        args = self.setting("args", [False])
        results = await asyncio.gather(
            *(
                self._system().exec(self._target(), index, method, *args)
                for index in self._indices()
            ),
            return_exceptions=True,
        )
        for index, result in enumerate(results, start=1):
            if isinstance(result, Exception):
                self.logger.warning("%s_%d.%s failed: %s", self._target(), index, method, result)
        return sum(1 for result in results if not isinstance(result, BaseException))

    def _changed(self, name: str, _value: Any) -> None:
        if name == self.setting("watch", "power"):
            self._count_on()

    def _count_on(self) -> None:
        system, watch = self._system(), self.setting("watch", "power")
        on = 0
        for index in self._indices():
            try:
                on += system.status(self._target(), index, watch) is True
            except EngineError:
                continue
        self.status[f"{watch}_count"] = on

    def _target(self) -> str:
        return str(self.setting("target", "Display"))

    def _indices(self) -> range:
        return range(1, self._system().count(self._target()) + 1)

    def _system(self) -> SystemAccess:
        if self.system is None:
            raise RuntimeError(f"{self.name} works for a control system, and is in none")
        return self.system
