"""The driver API: what an integrator subclasses to teach the engine a new device.

A driver is a class deriving from :class:`Driver`. The engine makes one instance per
module, hands it a :class:`ModuleContext` and calls its lifecycle hooks; every public
method the subclass defines becomes a command clients can execute::

    class Projector(Driver):
        async def on_start(self) -> None:
            ...  # connect to self.ip:self.port

        async def power(self, on: bool) -> None:
            ...
            self.status["power"] = on
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from app.runtime.status import DebugStream, ModuleLogger, Status, StatusCallback, Unsubscribe

Role = Literal["device", "service", "logic"]


class SystemAccess(Protocol):
    """How a logic driver reaches the other modules of its control system.

    Modules are addressed as clients address them: by name and 1-based index
    (``"Display", 2``). Errors are the engine's own (``NotFound`` for a module the
    system lacks, ``Conflict`` for one not running, ``DriverFailed`` when it raises).
    """

    @property
    def id(self) -> str:
        """The control system's id."""
        ...

    @property
    def settings(self) -> Mapping[str, Any]:
        """The control system's settings."""
        ...

    async def exec(self, module: str, index: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """Execute ``method`` on module ``module_index`` and return its result."""
        ...

    def count(self, module: str) -> int:
        """How many modules of the system are called ``module``."""
        ...

    def status(self, module: str, index: int, name: str) -> Any:
        """One status variable of a module, ``None`` when it has not been set."""
        ...

    def subscribe(self, module: str, index: int, callback: StatusCallback) -> Unsubscribe:
        """Hear every status change of a module; dropped when this module stops."""
        ...


class BackgroundTasks:
    """The tasks a driver started; the engine cancels them when the module stops.

    A task that fails is logged to the module's debug stream instead of vanishing
    as an unretrieved exception.
    """

    #: Seconds between repeated cancellations of a task that has not ended yet.
    RETRY_S: ClassVar[float] = 0.05

    def __init__(self, logger: ModuleLogger, *, patience: float = 10.0) -> None:
        self._logger = logger
        self._patience = patience
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def cancel_all(self) -> None:
        """Cancel every task and wait until they have all ended.

        Cancellation is repeated until a task ends, because library code may swallow
        one (``asyncio.wait_for`` does on Python 3.11 when the call it waits for
        completes at the same moment). A task still running after ``patience``
        seconds is abandoned with a warning rather than blocking the stop.
        """
        pending, self._tasks = self._tasks, set()
        deadline = asyncio.get_running_loop().time() + self._patience
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=self.RETRY_S)
            if pending and asyncio.get_running_loop().time() >= deadline:
                names = ", ".join(sorted(task.get_name() for task in pending))
                self._logger.warning("abandoned tasks that ignore cancellation: %s", names)
                return

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._logger.error("task %s failed", task.get_name(), exc_info=error)


@dataclass(frozen=True)
class ModuleContext:
    """Everything a driver instance knows about the module it runs as.

    ``settings`` are the driver's defaults overlaid by the module's own. ``system``
    is the module's first control system (logic modules belong to one), ``None``
    when the module is in none.
    """

    id: str
    name: str
    role: Role
    ip: str | None
    port: int | None
    uri: str | None
    settings: Mapping[str, Any]
    status: Status
    logger: ModuleLogger
    tasks: BackgroundTasks
    system: SystemAccess | None = None


class Driver:
    """Base class of every driver.

    Lifecycle hooks are coroutines, all optional: :meth:`on_load` once the instance
    exists, :meth:`on_start` to connect to the device, :meth:`on_update` when the
    module's settings or address change while it runs, :meth:`on_stop` to close
    every connection. Public methods defined on the subclass are the commands.
    """

    #: Marks the engine's own base classes: their attributes are never commands.
    engine_base: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.engine_base = cls.__dict__.get("engine_base", False)

    def __init__(self, context: ModuleContext) -> None:
        self.context = context

    @property
    def id(self) -> str:
        return self.context.id

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def ip(self) -> str | None:
        return self.context.ip

    @property
    def port(self) -> int | None:
        return self.context.port

    @property
    def uri(self) -> str | None:
        return self.context.uri

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.context.settings

    @property
    def status(self) -> Status:
        return self.context.status

    @property
    def logger(self) -> ModuleLogger:
        return self.context.logger

    @property
    def system(self) -> SystemAccess | None:
        return self.context.system

    async def on_load(self) -> None:
        """Called once the instance exists, before the first start."""

    async def on_start(self) -> None:
        """Connect to the device; called when the module starts."""

    async def on_update(self) -> None:
        """Apply changed settings or address in place.

        Unless a driver overrides this hook, the engine restarts the module instead
        (``on_stop``, then ``on_start`` with the new context).
        """

    async def on_stop(self) -> None:
        """Close every connection the driver opened; called when the module stops."""

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background until it ends or the module stops."""
        label = name or getattr(coroutine, "__qualname__", "task")
        return self.context.tasks.spawn(coroutine, name=f"{self.id}:{label}")

    def setting(self, name: str, default: Any = None) -> Any:
        """One setting, with ``default`` when the module and the driver both lack it."""
        return self.context.settings.get(name, default)


def overrides(driver: Driver, hook: str) -> bool:
    """Whether the driver's class defines ``hook`` itself rather than inheriting the base one."""
    return getattr(type(driver), hook) is not getattr(Driver, hook)


LOGGER_NAME = "app.modules"


def module_logger(module_id: str, stream: DebugStream) -> ModuleLogger:
    """The logger of one module, a child of :data:`LOGGER_NAME` in the normal log."""
    return ModuleLogger(logging.getLogger(LOGGER_NAME), stream, module_id)
