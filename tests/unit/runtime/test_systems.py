from __future__ import annotations

import pytest

from app.errors import NotFound, Unavailable
from app.runtime import ModuleHandle, SystemIndex, Systems, SystemSpec
from tests.unit.runtime.conftest import Changes, StubModule

ROOM = SystemSpec("sys-1", "Boardroom", ("m1", "m2", "m3", "m4"))
NAMES = {"m1": "Display", "m2": "Display", "m3": "Switcher", "m4": "Display"}


@pytest.fixture
def modules() -> dict[str, StubModule]:
    return {module_id: StubModule(module_id, name) for module_id, name in NAMES.items()}


@pytest.fixture
def systems(modules: dict[str, StubModule]) -> Systems:
    def find(module_id: str) -> ModuleHandle | None:
        return modules.get(module_id)

    systems = Systems(find, exec_timeout=3.0)
    systems.replace([ROOM])
    return systems


def test_modules_are_numbered_per_name_in_system_order() -> None:
    index = SystemIndex.build(ROOM, NAMES.get)

    assert index.resolve("Display", 2) == "m2"
    assert index.resolve("Display", 3) == "m4"
    assert index.resolve("Switcher") == "m3"
    assert index.count("Display") == 3
    assert index.keys() == {
        "Display_1": "m1",
        "Display_2": "m2",
        "Switcher_1": "m3",
        "Display_3": "m4",
    }


@pytest.mark.parametrize(("name", "index"), [("Display", 4), ("Display", 0), ("Lighting", 1)])
def test_a_module_the_system_lacks_is_not_found(name: str, index: int) -> None:
    with pytest.raises(NotFound, match=f"has no module {name}_{index}"):
        SystemIndex.build(ROOM, NAMES.get).resolve(name, index)


def test_numbering_stops_at_a_module_whose_name_is_unknown() -> None:
    index = SystemIndex.build(ROOM, {**NAMES, "m2": None}.get)

    assert index.resolve("Display", 1) == "m1"
    with pytest.raises(Unavailable, match="module m2 is not loaded, so Display_2 cannot"):
        index.resolve("Display", 2)  # m2 might be Display_2, or m4 might
    with pytest.raises(Unavailable):
        index.resolve("Switcher", 1)


def test_system_state_is_keyed_by_name_and_index(
    systems: Systems, modules: dict[str, StubModule]
) -> None:
    modules["m2"].status["power"] = True
    modules["m3"].status["input"] = 2

    state = systems.state("sys-1")

    assert state == {
        "Display_1": {},
        "Display_2": {"power": True},
        "Switcher_1": {"input": 2},
        "Display_3": {},
    }


async def test_system_exec_reaches_the_resolved_module_with_the_default_timeout(
    systems: Systems, modules: dict[str, StubModule]
) -> None:
    result = await systems.exec("sys-1", "Display", 3, "power", [False], {"fade": 1})

    assert result == "m4.power"
    assert modules["m4"].calls == [("power", (False,), {"fade": 1}, 3.0)]


def test_funcs_come_from_the_resolved_module(systems: Systems) -> None:
    assert systems.funcs("sys-1", "Switcher", 1) == {"power": {"params": [], "doc": None}}


def test_an_unknown_or_removed_system_is_not_found(systems: Systems) -> None:
    systems.remove("sys-1")

    with pytest.raises(NotFound, match="no control system sys-1"):
        systems.state("sys-1")


def test_upsert_replaces_a_system(systems: Systems) -> None:
    systems.upsert(SystemSpec("sys-1", "Boardroom", ("m3", "m1")))

    assert systems.index("sys-1").keys() == {"Switcher_1": "m3", "Display_1": "m1"}
    assert systems.ids() == ["sys-1"]


async def test_a_binding_addresses_its_own_system(
    systems: Systems, modules: dict[str, StubModule]
) -> None:
    binding = systems.bind("sys-1")
    modules["m1"].status["power"] = True

    assert await binding.exec("Display", 2, "power", True) == "m2.power"
    assert binding.count("Display") == 3
    assert binding.status("Display", 1, "power") is True
    assert binding.status("Display", 1, "input") is None
    assert binding.id == "sys-1"


def test_releasing_a_binding_drops_its_subscriptions(
    systems: Systems, modules: dict[str, StubModule]
) -> None:
    binding, changes = systems.bind("sys-1"), Changes()
    binding.subscribe("Switcher", 1, changes)
    modules["m3"].status["input"] = 1

    binding.release()
    modules["m3"].status["input"] = 2

    assert changes.seen == [("input", 1)]
