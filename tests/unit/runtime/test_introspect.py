from __future__ import annotations

from typing import Any

from app.runtime import DeviceDriver, Driver
from app.runtime.introspect import commands, describe


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
