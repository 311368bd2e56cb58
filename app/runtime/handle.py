"""How the rest of the engine talks to a module, wherever it runs.

A :class:`ModuleHandle` is implemented by a module running in this process and,
just as well, by a proxy for a module another server controls: routers, the client
websocket and logic drivers use handles only, so remote modules slot in unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from app.runtime.status import DebugCallback, StatusCallback, Unsubscribe


class ModuleHandle(Protocol):
    """One module as clients see it.

    ``exec`` raises the engine's errors: ``NotFound`` (no such method),
    ``InvalidField`` (arguments that do not fit the method), ``Conflict`` (the
    module is not running), ``DriverFailed`` (the driver raised) and
    ``GatewayTimeout`` (no result within ``timeout`` seconds).
    """

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str:
        """The module's custom name, by which systems address it (``Display``)."""
        ...

    async def exec(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any: ...

    def state(self) -> dict[str, Any]:
        """The module's status variables."""
        ...

    def funcs(self) -> dict[str, dict[str, Any]]:
        """The module's commands: ``{name: {"params": [...], "doc": ...}}``."""
        ...

    def subscribe_status(self, callback: StatusCallback) -> Unsubscribe:
        """Hear every status change as ``callback(name, value)``."""
        ...

    def subscribe_debug(self, callback: DebugCallback) -> Unsubscribe:
        """Hear every log line as ``callback(level, message)``."""
        ...


ModuleLookup = Callable[[str], ModuleHandle | None]
"""Finds the handle of a module by id, ``None`` when it is not known."""
