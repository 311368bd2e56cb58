from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from app.runtime import DeviceDriver, Driver
from app.runtime.introspect import Arity, commands, describe


class _Mixin:
    def shared(self) -> str:
        return "mixin"


class Display(_Mixin, DeviceDriver):
    async def on_start(self) -> None:
        await super().on_start()

    async def power(self, on: bool, *, delay: float = 0.5) -> None:
        """Switch the display.

        Waits ``delay`` first.
        """

    def volume(self, level, marker: Any = object()):  # type: ignore[no-untyped-def]
        return level

    @staticmethod
    def version() -> str:
        return "1.0"

    async def _checksum(self) -> int:
        return 0


class BigDisplay(Display):
    async def power(self, on: bool, *, delay: float = 1.0) -> None:
        pass

    volume = None  # type: ignore[assignment]


def test_commands_are_the_public_functions_the_integrator_wrote() -> None:
    assert list(commands(Display)) == ["shared", "power", "volume", "version"]


def test_hooks_helpers_and_private_methods_are_never_commands() -> None:
    names = set(commands(Display))

    assert not names & {"on_start", "on_stop", "on_load", "on_update", "spawn", "setting"}
    assert not names & {"send_request", "send_bytes", "on_frame", "_checksum"}


def test_a_subclass_overrides_or_hides_a_command() -> None:
    found = commands(BigDisplay)

    assert list(found) == ["shared", "power", "version"]
    assert found["power"].function is BigDisplay.power


def test_a_plain_driver_has_no_commands() -> None:
    assert commands(Driver) == {}


def test_describe_gives_parameters_without_self_and_the_docstring() -> None:
    power = describe(Display)["power"]

    assert power == {
        "params": [
            {"name": "on", "kind": "positional_or_keyword", "annotation": "bool"},
            {"name": "delay", "kind": "keyword_only", "default": 0.5, "annotation": "float"},
        ],
        "doc": "Switch the display.\n\nWaits ``delay`` first.",
        "returns": "None",
    }


def test_describe_makes_defaults_json_friendly_and_keeps_static_parameters() -> None:
    described = describe(Display)

    marker = described["volume"]["params"][1]
    assert marker["default"].startswith("<object object")
    assert described["volume"]["params"][0] == {"name": "level", "kind": "positional_or_keyword"}
    assert described["version"] == {"params": [], "doc": None, "returns": "str"}


def _signatures() -> list[Callable[..., Any]]:
    def plain(a, b, c=3):  # type: ignore[no-untyped-def]
        pass

    def starred(a, *rest, flag=False, **extra):  # type: ignore[no-untyped-def]
        pass

    def keyword_only(a, *, b, c=1):  # type: ignore[no-untyped-def]
        pass

    def positional_only(a, b=2, /, c=3):  # type: ignore[no-untyped-def]
        pass

    def positional_only_and_extra(a, /, **extra):  # type: ignore[no-untyped-def]
        pass

    def nothing():  # type: ignore[no-untyped-def]
        pass

    return [plain, starred, keyword_only, positional_only, positional_only_and_extra, nothing]


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4), {}),
    ((1,), {"b": 2}),
    ((1,), {"a": 2}),
    ((), {"a": 1, "b": 2}),
    ((1, 2), {"c": 3}),
    ((1,), {"c": 3}),
    ((1,), {"b": 2, "c": 3, "d": 4}),
    ((1,), {"flag": True, "other": 5}),
    ((1,), {"extra": 1}),
]


@pytest.mark.parametrize("function", _signatures(), ids=lambda f: f.__name__)
def test_the_compiled_check_accepts_exactly_what_binding_accepts(
    function: Callable[..., Any],
) -> None:
    signature = inspect.signature(function)
    arity = Arity.of(list(signature.parameters.values()))
    for args, kwargs in CALLS:
        try:
            signature.bind(*args, **kwargs)
            binds = True
        except TypeError:
            binds = False
        # Never a false yes; and every plain call (no positional-only by keyword) is a yes.
        assert not arity.fits(args, kwargs) or binds, (function.__name__, args, kwargs)
        if binds and function.__name__ != "positional_only_and_extra":
            assert arity.fits(args, kwargs), (function.__name__, args, kwargs)
