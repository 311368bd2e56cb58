"""What a module shows the outside world: its status variables and its debug stream.

Both outlive the driver instance that feeds them: they belong to the module, so a
restart or a live reload keeps the last known values and every client binding.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, ParamSpec

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")

Unsubscribe = Callable[[], None]
StatusCallback = Callable[[str, Any], None]
DebugCallback = Callable[[str, str], None]


class Subscribers(Generic[_P]):
    """A set of callbacks that all hear every event.

    A callback that raises is logged and skipped: one faulty listener (a client
    socket, a logic driver) must not keep the others, or the caller, from running.
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._callbacks: list[Callable[_P, None]] = []

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def add(self, callback: Callable[_P, None]) -> Unsubscribe:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, *args: _P.args, **kwargs: _P.kwargs) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(*args, **kwargs)
            except Exception:
                logger.exception("%s: subscriber %r raised", self._owner, callback)


class Status(MutableMapping[str, Any]):
    """A module's status variables; subscribers hear every change as ``(name, value)``.

    Assigning the value a variable already holds is not a change and notifies no
    one, so drivers can write what they read from a device on every poll. A value is
    compared by type as well as equality (``1`` then ``True`` is a change), and a
    mutated list or dict must be assigned as a new object to be seen. Deleting a
    variable notifies ``(name, None)``.
    """

    def __init__(self, owner: str = "status") -> None:
        self._values: dict[str, Any] = {}
        self._subscribers: Subscribers[[str, Any]] = Subscribers(owner)

    def subscribe(self, callback: StatusCallback) -> Unsubscribe:
        return self._subscribers.add(callback)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if name in self._values:
            old = self._values[name]
            if type(old) is type(value) and old == value:
                return
        self._values[name] = value
        self._subscribers.notify(name, value)

    def __delitem__(self, name: str) -> None:
        del self._values[name]
        self._subscribers.notify(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Status({self._values!r})"

    def snapshot(self) -> dict[str, Any]:
        """A copy of the current values, safe to hand to another thread or node."""
        return dict(self._values)


class DebugStream:
    """The log lines of one module, for whoever is watching it (``debug`` on the websocket).

    Subscribers receive ``(level, message)`` with the level as a lowercase name
    (``debug``, ``info``, ``warning``, ``error``, ``critical``).
    """

    def __init__(self, owner: str = "debug") -> None:
        self._subscribers: Subscribers[[str, str]] = Subscribers(owner)

    @property
    def watched(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, callback: DebugCallback) -> Unsubscribe:
        return self._subscribers.add(callback)

    def emit(self, level: int, message: str) -> None:
        self._subscribers.notify(logging.getLevelName(level).lower(), message)


class ModuleLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose lines also reach the module's debug stream.

    Every level reaches a watcher of the stream, whatever the level of the normal
    log: someone debugging a module wants its ``debug`` lines without turning them
    on for the whole server. The normal log only gets what its level lets through.
    """

    def __init__(self, logger: logging.Logger, stream: DebugStream, module_id: str) -> None:
        super().__init__(logger, {"module_id": module_id})
        self.stream = stream
        self.module_id = module_id

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.module_id}] {msg}", kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.stream.watched:
            self.stream.emit(level, _render(msg, args, kwargs.get("exc_info")))
        if self.isEnabledFor(level):
            text, options = self.process(msg, kwargs)
            self.logger.log(level, text, *args, **options)


def _render(msg: object, args: tuple[object, ...], exc_info: object) -> str:
    """The text of one log line as ``logging`` would format it, traceback included."""
    record = logging.LogRecord("", logging.NOTSET, "", 0, msg, args, None)
    record.exc_info = _exc_info(exc_info)
    return logging.Formatter("%(message)s").format(record)


def _exc_info(value: object) -> Any:
    """Normalise ``exc_info`` as ``logging`` accepts it; ``None`` without an exception."""
    if not value:
        return None
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    info = value if isinstance(value, tuple) else sys.exc_info()
    return info if info[0] is not None else None
