"""A module running in this process: one driver instance, its lifecycle and its calls.

:class:`LocalModule` is the local :class:`~app.runtime.handle.ModuleHandle`. It is
the wall between driver code and the server: whatever a driver raises, in a hook,
a command or a background task, is logged to the module's debug stream and turned
into one of the engine's errors, never let loose on the caller's event loop.

A lifecycle hook that fails leaves its message in :attr:`LocalModule.error`
(cleared by the next successful start); a failing ``on_load``, ``on_start`` or
``on_update`` leaves the module stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.errors import Conflict, DriverFailed, EngineError, GatewayTimeout, InvalidField, NotFound
from app.runtime.deadlines import Deadlines
from app.runtime.driver import BackgroundTasks, Driver, ModuleContext, module_logger, overrides
from app.runtime.introspect import Command, commands, describe
from app.runtime.spec import ModuleSpec
from app.runtime.status import (
    DebugCallback,
    DebugStream,
    Status,
    StatusCallback,
    Unsubscribe,
)
from app.runtime.systems import SystemBinding

SystemBinder = Callable[[str], SystemBinding]


class LocalModule:
    """One module of this server; every lifecycle change runs under one lock."""

    def __init__(
        self,
        spec: ModuleSpec,
        driver_class: type[Driver],
        *,
        bind_system: SystemBinder,
        exec_timeout: float,
        hook_timeout: float,
    ) -> None:
        self._spec = spec
        self._bind_system = bind_system
        self._exec_timeout = exec_timeout
        self._hook_timeout = hook_timeout
        self._status = Status(f"module {spec.id} status")
        self._debug = DebugStream(f"module {spec.id} debug")
        self._logger = module_logger(spec.id, self._debug)
        self._tasks = BackgroundTasks(self._logger, patience=hook_timeout)
        self._system: SystemBinding | None = None
        self._lock = asyncio.Lock()
        self._calls: set[_RunningCall] = set()
        self._deadlines: Deadlines[_RunningCall] = Deadlines(_RunningCall.time_out)
        self._running = False
        self._loaded = False
        self.error: str | None = None
        self._use(driver_class)

    def __repr__(self) -> str:
        return f"LocalModule({self.id}, {self._spec.class_name})"

    @property
    def id(self) -> str:
        return self._spec.id

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> ModuleSpec:
        return self._spec

    @property
    def running(self) -> bool:
        return self._running

    # --- lifecycle -----------------------------------------------------------------

    async def load(self) -> None:
        """Run ``on_load``; ``DriverFailed`` if it raised (the module stays, stopped)."""
        async with self._lock:
            await self._load_locked()

    async def start(self) -> None:
        """Start the driver (loading it first if that failed before); idempotent."""
        async with self._lock:
            if self._running:
                return
            if not self._loaded:
                await self._load_locked()
            await self._start_locked()

    async def stop(self) -> None:
        """Stop the driver; a failing ``on_stop`` is logged, the module stops anyway."""
        async with self._lock:
            if self._running:
                await self._stop_locked()

    async def unload(self) -> None:
        """Stop the driver and drop anything it left, even if it never started."""
        async with self._lock:
            if self._running:
                await self._stop_locked()
            else:
                await self._release()

    async def update(self, spec: ModuleSpec) -> None:
        """Apply new settings, address or systems to the same driver code.

        A running module gets ``on_update`` if its driver has one, else a restart;
        a stopped one just takes the new values.
        """
        async with self._lock:
            self._spec = spec
            self._driver.context = self._new_context()
            if not self._running:
                return
            if not overrides(self._driver, "on_update"):
                await self._stop_locked()
                await self._start_locked()
                return
            try:
                await self._call_hook("on_update")
            except DriverFailed:
                await self._stop_locked()
                raise

    async def replace_driver(self, driver_class: type[Driver], spec: ModuleSpec) -> None:
        """Swap in freshly loaded driver code, restarting the module if it was running.

        Status variables and subscribers are the module's and carry over.
        """
        async with self._lock:
            was_running = self._running
            if was_running:
                await self._stop_locked()
            self._spec = spec
            self._use(driver_class)
            await self._load_locked()
            if was_running:
                await self._start_locked()

    async def restore_status(self, values: Mapping[str, Any]) -> None:
        """Take over the last status another controller had, before this one starts."""
        async with self._lock:
            if self._running:
                raise Conflict(f"module {self.id} is running: its driver owns its status")
            self._status.update(values)

    def _use(self, driver_class: type[Driver]) -> None:
        try:
            self._driver = driver_class(self._new_context())
        except Exception as exc:
            self.error = f"{driver_class.__name__}() failed: {_message(exc)}"
            self._logger.error("%s", self.error, exc_info=exc)
            raise DriverFailed(self.error, module_id=self.id) from exc
        self._commands: dict[str, Command] = commands(driver_class)
        self._funcs = describe(driver_class)
        self._loaded = False

    def _new_context(self) -> ModuleContext:
        """A context for the current spec, with a fresh binding to the module's system."""
        if self._system is not None:
            self._system.release()
        system_id = self._spec.system_id
        self._system = self._bind_system(system_id) if system_id is not None else None
        spec = self._spec
        return ModuleContext(
            id=spec.id,
            name=spec.name,
            role=spec.role,
            ip=spec.ip,
            port=spec.port,
            uri=spec.uri,
            settings=spec.merged_settings,
            status=self._status,
            logger=self._logger,
            tasks=self._tasks,
            system=self._system,
        )

    async def _load_locked(self) -> None:
        try:
            await self._call_hook("on_load")
        except DriverFailed as exc:
            self.error = exc.detail
            raise
        self._loaded = True

    async def _start_locked(self) -> None:
        try:
            await self._call_hook("on_start")
        except DriverFailed as exc:
            await self._shut_down()
            self.error = exc.detail  # the cause, rather than any failure while cleaning up
            raise
        self._running = True
        self.error = None
        self._logger.info("started")

    async def _stop_locked(self) -> None:
        self._running = False
        for call in tuple(self._calls):
            call.interrupt(_STOPPED)
        await self._shut_down()
        self._logger.info("stopped")

    async def _shut_down(self) -> None:
        """Cancel the driver's background tasks, run ``on_stop``, drop its subscriptions."""
        await self._tasks.cancel_all()  # first, so no task reacts to connections closing
        try:
            await self._call_hook("on_stop")
        except DriverFailed as exc:
            self.error = exc.detail
        await self._release()  # and whatever on_stop itself started

    async def _release(self) -> None:
        await self._tasks.cancel_all()
        if self._system is not None:
            self._system.release()

    async def _call_hook(self, hook: str) -> None:
        deadline = asyncio.timeout(self._hook_timeout)
        try:
            async with deadline:
                await getattr(self._driver, hook)()
        except Exception as exc:
            expired = isinstance(exc, TimeoutError) and deadline.expired()
            reason = f"timed out after {self._hook_timeout:g} s" if expired else _message(exc)
            self._logger.error("%s failed: %s", hook, reason, exc_info=None if expired else exc)
            raise DriverFailed(f"{hook} failed: {reason}", module_id=self.id) from exc

    # --- the handle ----------------------------------------------------------------

    async def exec(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        command = self._commands.get(method)
        if command is None:
            raise NotFound(f"module {self.id} has no method {method!r}")
        try:
            command.check_arguments(self._driver, args, kwargs)
        except TypeError as exc:
            raise InvalidField(_argument_field(str(exc)), str(exc)) from None
        if not self._running:
            raise Conflict(f"module {self.id} is not running")
        return await self._call(command, args, kwargs, timeout or self._exec_timeout)

    def state(self) -> dict[str, Any]:
        return self._status.snapshot()

    def funcs(self) -> dict[str, dict[str, Any]]:
        return self._funcs

    def subscribe_status(self, callback: StatusCallback) -> Unsubscribe:
        return self._status.subscribe(callback)

    def subscribe_debug(self, callback: DebugCallback) -> Unsubscribe:
        return self._debug.subscribe(callback)

    async def _call(
        self, command: Command, args: Sequence[Any], kwargs: Mapping[str, Any], timeout: float
    ) -> Any:
        """Run the command in the caller's task, interruptible by its deadline and by a stop.

        No task of its own (a second task and an ``asyncio.timeout`` took 11 % of an
        edge's time per exec; 8.8 µs against 2.7 µs, bench/README.md §8): the deadline
        and a stop cancel the caller's task, and this frame turns exactly those
        cancellations into engine errors, while a cancellation from elsewhere passes
        through. The deadline is the module's one timer (`Deadlines`), not a timer per
        call.
        """
        task = asyncio.current_task()
        assert task is not None, "exec runs in a task"
        call = _RunningCall(task)
        self._deadlines.add(call, timeout)
        self._calls.add(call)
        try:
            return await self._invoke(command, args, kwargs)
        except asyncio.CancelledError:
            if call.reason is None:
                raise  # cancelled from outside: not ours to answer
            call.reason_seen = True
            if task.uncancel() > call.cancelling:
                raise  # cancelled from outside too
            if call.reason == _TIMED_OUT:
                self._logger.warning("%s timed out after %g s", command.name, timeout)
                raise GatewayTimeout(
                    f"module {self.id}: {command.name} did not return within {timeout:g} s"
                ) from None
            raise Conflict(f"module {self.id} stopped during {command.name}") from None
        finally:
            self._deadlines.remove(call, timeout)
            self._calls.discard(call)
            if call.reason is not None and not call.reason_seen:
                # The command swallowed the cancellation and returned: take back our request.
                task.uncancel()

    async def _invoke(
        self, command: Command, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        try:
            return await command.invoke(self._driver, args, kwargs)
        except EngineError:
            raise  # a driver's deliberate answer (e.g. InvalidField for a bad input name)
        except Exception as exc:
            self._logger.error("%s failed: %s", command.name, _message(exc), exc_info=exc)
            raise DriverFailed(
                _message(exc), module_id=self.id, method=command.name, exception=type(exc).__name__
            ) from exc


_TIMED_OUT = "timed out"
_STOPPED = "stopped"


class _RunningCall:
    """A command running in its caller's task, and why (if at all) we cancelled it."""

    __slots__ = ("cancelling", "reason", "reason_seen", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        #: Cancellations of the task requested by others before the call began.
        self.cancelling = task.cancelling()
        self.reason: str | None = None
        self.reason_seen = False

    def interrupt(self, reason: str) -> None:
        """Cancel the call once; never the task asking (a command stopping its module)."""
        if self.reason is None and self.task is not asyncio.current_task():
            self.reason = reason
            self.task.cancel()

    def time_out(self) -> None:
        self.interrupt(_TIMED_OUT)


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _argument_field(message: str) -> str:
    """Which request field a binding error is about: ``kwargs`` or ``args``."""
    return "kwargs" if "keyword" in message or "multiple values" in message else "args"
