"""Which methods of a driver class are commands, and how clients see them (``funcs``)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from weakref import WeakKeyDictionary

from app.runtime.driver import Driver


@dataclass(frozen=True)
class Command:
    """One executable method of a driver class."""

    name: str
    function: Callable[..., Any]
    static: bool

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.function)

    @cached_property
    def _arity(self) -> Arity:
        params = list(self.signature.parameters.values())
        return Arity.of(params if self.static else params[1:])

    def check_arguments(
        self, driver: Driver, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Raise ``TypeError`` when the arguments do not fit, before the driver runs.

        Checking first tells a caller's mistake apart from a ``TypeError`` the
        driver's own code raises. The check is compiled once per command
        (`Arity`); only arguments that may not fit are bound with
        ``inspect.Signature.bind``, for its verdict and its message.
        """
        if not self._arity.fits(args, kwargs):
            self.signature.bind(*self._receiver(driver), *args, **kwargs)

    async def invoke(self, driver: Driver, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the command; plain methods run inline, coroutines are awaited."""
        result = self.function(*self._receiver(driver), *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def describe(self) -> dict[str, Any]:
        """The JSON-friendly description clients get from ``funcs``."""
        signature = self.signature
        params = list(signature.parameters.values())
        if not self.static:
            params = params[1:]
        description: dict[str, Any] = {
            "params": [_describe_parameter(param) for param in params],
            "doc": inspect.cleandoc(self.function.__doc__) if self.function.__doc__ else None,
        }
        if signature.return_annotation is not inspect.Signature.empty:
            description["returns"] = _annotation(signature.return_annotation)
        return description

    def _receiver(self, driver: Driver) -> tuple[Driver, ...]:
        return () if self.static else (driver,)


@dataclass(frozen=True, slots=True)
class Arity:
    """What a call must pass to a function, precomputed from its parameters.

    `fits` answers True only for arguments ``inspect.Signature.bind`` accepts; when
    it answers False, binding decides (and explains). It takes 0.5 µs where a bind
    takes 2.6 µs (bench/README.md §8).
    """

    positional: tuple[str, ...]
    #: Index in ``positional`` of each parameter that may also be passed by keyword.
    by_keyword: Mapping[str, int]
    #: Indices in ``positional`` of the parameters without a default.
    required: frozenset[int]
    keyword_only: frozenset[str]
    required_keyword_only: frozenset[str]
    var_positional: bool
    var_keyword: bool

    @classmethod
    def of(cls, params: Sequence[inspect.Parameter]) -> Arity:
        kinds = inspect.Parameter
        positional = [
            p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        ]
        keyword_only = [p for p in params if p.kind is kinds.KEYWORD_ONLY]
        return cls(
            positional=tuple(p.name for p in positional),
            by_keyword={
                p.name: i for i, p in enumerate(positional) if p.kind is kinds.POSITIONAL_OR_KEYWORD
            },
            required=frozenset(i for i, p in enumerate(positional) if p.default is kinds.empty),
            keyword_only=frozenset(p.name for p in keyword_only),
            required_keyword_only=frozenset(
                p.name for p in keyword_only if p.default is kinds.empty
            ),
            var_positional=any(p.kind is kinds.VAR_POSITIONAL for p in params),
            var_keyword=any(p.kind is kinds.VAR_KEYWORD for p in params),
        )

    def fits(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        given = len(args)
        if given > len(self.positional) and not self.var_positional:
            return False
        for name in kwargs:
            index = self.by_keyword.get(name)
            if index is not None:
                if index < given:
                    return False  # a value by position and by keyword
            elif name not in self.keyword_only and not self.var_keyword:
                return False
            elif name in self.positional:
                return False  # positional-only by keyword: binding decides
        for index in self.required:
            if index >= given:
                name = self.positional[index]  # so it must come by keyword
                if name not in self.by_keyword or name not in kwargs:
                    return False
        return all(name in kwargs for name in self.required_keyword_only)


#: Introspection is per class, and a server may run thousands of modules of one driver.
#: Weak keys let a reloaded driver's old class go.
_COMMANDS: WeakKeyDictionary[type[Driver], dict[str, Command]] = WeakKeyDictionary()
_DESCRIPTIONS: WeakKeyDictionary[type[Driver], dict[str, dict[str, Any]]] = WeakKeyDictionary()


def commands(driver_class: type[Driver]) -> dict[str, Command]:
    """The commands of ``driver_class`` by name (computed once per class)."""
    found = _COMMANDS.get(driver_class)
    if found is None:
        found = _COMMANDS[driver_class] = _find_commands(driver_class)
    return found


def _find_commands(driver_class: type[Driver]) -> dict[str, Command]:
    """The commands of ``driver_class`` by name, base classes' first.

    A command is a public function (or static method) defined by the integrator's
    classes: the engine's base classes, their hooks and helpers never count, so a
    driver cannot be made to run ``on_stop`` from a client.
    """
    engine_names = {
        name for klass in driver_class.__mro__ if _is_engine_base(klass) for name in vars(klass)
    }
    found: dict[str, Command] = {}
    for klass in reversed(driver_class.__mro__):
        if klass is object or _is_engine_base(klass):
            continue
        for name, attribute in vars(klass).items():
            if name.startswith("_") or name in engine_names:
                continue
            static = isinstance(attribute, staticmethod)
            function = attribute.__func__ if static else attribute
            if inspect.isfunction(function):
                found[name] = Command(name, function, static)
            else:
                found.pop(name, None)
    return found


def describe(driver_class: type[Driver]) -> dict[str, dict[str, Any]]:
    """``{name: {"params": [...], "doc": ...}}`` for every command of ``driver_class``.

    Computed once per class and shared: treat it as read-only.
    """
    found = _DESCRIPTIONS.get(driver_class)
    if found is None:
        found = _DESCRIPTIONS[driver_class] = {
            name: command.describe() for name, command in commands(driver_class).items()
        }
    return found


def _is_engine_base(klass: type) -> bool:
    return issubclass(klass, Driver) and bool(vars(klass).get("engine_base", False))


def _describe_parameter(param: inspect.Parameter) -> dict[str, Any]:
    description: dict[str, Any] = {"name": param.name, "kind": param.kind.name.lower()}
    if param.default is not inspect.Parameter.empty:
        description["default"] = _json_friendly(param.default)
    if param.annotation is not inspect.Parameter.empty:
        description["annotation"] = _annotation(param.annotation)
    return description


def _annotation(annotation: Any) -> str:
    """Annotations as written (they are strings under postponed evaluation)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _json_friendly(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
