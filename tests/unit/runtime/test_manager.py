from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.errors import Conflict, DriverFailed, NotFound
from app.runtime import (
    DriverLoadError,
    DriverRepository,
    ModuleHandle,
    ModuleManager,
    Role,
    SystemSpec,
)
from tests.unit.runtime.conftest import (
    BUNDLED_DRIVERS,
    PROBE,
    DriverWriter,
    StubModule,
    eventually,
    module_spec,
    probe_spec,
)

Journal = list[tuple[str, str]]

ECHO = "generic/echo.py"


@pytest.fixture
async def git_manager(tmp_path: Path) -> AsyncIterator[ModuleManager]:
    """A manager on a real git checkout, as a server runs (reloads report its HEAD)."""
    repository = DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS)
    await repository.ensure()
    manager = ModuleManager(repository, exec_timeout=2.0, hook_timeout=2.0)
    yield manager
    await manager.stop_all()


async def test_start_many_starts_devices_then_services_then_logic(
    manager: ModuleManager, probe: str
) -> None:
    journal: Journal = []
    roles: list[tuple[str, Role]] = [("logic", "logic"), ("svc", "service"), ("dev", "device")]
    for module_id, role in roles:
        await manager.load(probe_spec(module_id, journal, role))

    failures = await manager.start_many(["logic", "svc", "dev"])

    assert failures == {}
    assert journal == [("start", "dev"), ("start", "svc"), ("start", "logic")]
    assert sorted(manager.running_ids()) == ["dev", "logic", "svc"]


async def test_stop_many_stops_in_the_reverse_order(manager: ModuleManager, probe: str) -> None:
    journal: Journal = []
    roles: list[tuple[str, Role]] = [("dev", "device"), ("svc", "service"), ("logic", "logic")]
    for module_id, role in roles:
        await manager.load(probe_spec(module_id, journal, role))
    await manager.start_many(["dev", "svc", "logic"])
    journal.clear()

    await manager.stop_all()

    assert journal == [("stop", "logic"), ("stop", "svc"), ("stop", "dev")]
    assert manager.running_ids() == []


async def test_a_module_failing_to_start_does_not_keep_the_others_from_running(
    manager: ModuleManager, probe: str
) -> None:
    journal: Journal = []
    await manager.load(probe_spec("bad", journal, "device", fail_start=True))
    await manager.load(probe_spec("good", journal, "device"))
    await manager.load(probe_spec("logic", journal, "logic"))

    failures = await manager.start_many(["bad", "good", "logic", "missing"])

    assert failures == {
        "bad": "on_start failed: the device refused",
        "missing": "module missing is not loaded on this server",
    }
    assert sorted(manager.running_ids()) == ["good", "logic"]
    assert await manager.exec("good", "add", [1]) == 3


async def test_a_driver_that_does_not_load_loads_no_module(manager: ModuleManager) -> None:
    with pytest.raises(DriverLoadError, match="no such file"):
        await manager.load(module_spec("mod-1", "vendor/missing.py", "Missing"))

    assert not manager.is_loaded("mod-1")


async def test_an_unloaded_module_is_gone(manager: ModuleManager, probe: str) -> None:
    journal: Journal = []
    await manager.load(probe_spec("mod-1", journal))
    await manager.start("mod-1")

    await manager.unload("mod-1")

    assert journal[-1] == ("stop", "mod-1")
    assert manager.loaded_ids() == []
    with pytest.raises(NotFound, match="not loaded on this server"):
        await manager.exec("mod-1", "add", [1])


async def test_loading_a_loaded_module_updates_it(manager: ModuleManager, probe: str) -> None:
    journal: Journal = []
    spec = probe_spec("mod-1", journal)
    await manager.load(spec)
    await manager.start("mod-1")

    await manager.load(replace(spec, settings={**spec.settings, "marker": 2}))

    assert await manager.exec("mod-1", "setting_of", ["marker"]) == 2
    assert manager.loaded_ids() == ["mod-1"]


async def test_an_update_to_another_driver_swaps_the_code(
    manager: ModuleManager, probe: str
) -> None:
    journal: Journal = []
    await manager.load(probe_spec("mod-1", journal))
    await manager.start("mod-1")

    await manager.update(module_spec("mod-1", ECHO, "Echo", driver_id="drv-echo"))

    assert manager.is_running("mod-1")
    assert await manager.exec("mod-1", "echo", ["hi"]) == "hi"
    assert set(manager.funcs("mod-1")) == {"echo", "fail", "sleep", "set"}


async def test_a_live_reload_with_an_edited_file_changes_a_running_module(
    git_manager: ModuleManager,
) -> None:
    await git_manager.load(module_spec("mod-1", ECHO, "Echo", driver_id="drv-echo"))
    await git_manager.start("mod-1")
    await git_manager.exec("mod-1", "set", ["power", True])
    edited = (
        (git_manager.repository.path / ECHO)
        .read_text()
        .replace("        return value\n", "        return f'v2 {value}'\n")
    )

    commit = await git_manager.reload_driver("drv-echo", ECHO, "Echo", {ECHO: edited})

    assert commit == git_manager.repository.head()
    assert git_manager.is_running("mod-1")
    assert await git_manager.exec("mod-1", "echo", ["hi"]) == "v2 hi"
    assert git_manager.state("mod-1") == {"power": True}  # status carries over
    assert (await git_manager.repository.status())["dirty"] is True


async def test_a_broken_edit_is_refused_and_the_old_code_keeps_running(
    git_manager: ModuleManager,
) -> None:
    await git_manager.load(module_spec("mod-1", ECHO, "Echo", driver_id="drv-echo"))
    await git_manager.start("mod-1")

    with pytest.raises(DriverLoadError, match="line 1: SyntaxError") as caught:
        await git_manager.reload_driver("drv-echo", ECHO, "Echo", {ECHO: "def broken(:\n"})

    assert caught.value.status == 422
    assert git_manager.is_running("mod-1")
    assert await git_manager.exec("mod-1", "echo", ["hi"]) == "hi"
    # The broken edit is not left behind for the next load to trip over.
    assert (await git_manager.repository.status())["dirty"] is False
    await git_manager.load(module_spec("mod-2", ECHO, "Echo", driver_id="drv-other"))


async def test_a_reload_restarts_only_that_drivers_modules_and_keeps_stopped_ones_stopped(
    git_manager: ModuleManager, tmp_path: Path
) -> None:
    (git_manager.repository.path / "tests").mkdir()
    (git_manager.repository.path / "tests" / "probe.py").write_text(PROBE)
    journal: Journal = []
    await git_manager.load(probe_spec("probe-1", journal))
    await git_manager.load(probe_spec("probe-2", journal))
    await git_manager.load(module_spec("echo-1", ECHO, "Echo", driver_id="drv-echo"))
    await git_manager.start_many(["probe-1", "echo-1"])
    journal.clear()

    await git_manager.reload_driver("drv-Probe", "tests/probe.py", "Probe")

    assert journal == [("stop", "probe-1"), ("start", "probe-1")]
    assert sorted(git_manager.running_ids()) == ["echo-1", "probe-1"]


async def test_a_reloaded_module_whose_start_fails_is_left_stopped(
    git_manager: ModuleManager,
) -> None:
    await git_manager.load(module_spec("mod-1", ECHO, "Echo", driver_id="drv-echo"))
    await git_manager.start("mod-1")
    failing = (git_manager.repository.path / ECHO).read_text() + (
        "\n    async def on_start(self) -> None:\n        raise RuntimeError('no licence')\n"
    )

    await git_manager.reload_driver("drv-echo", ECHO, "Echo", {ECHO: failing})

    assert not git_manager.is_running("mod-1")
    assert git_manager.describe("mod-1")["error"] == "on_start failed: no licence"


async def test_status_snapshot_and_restore_hand_status_over(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    old = manager
    new = ModuleManager(manager.repository)
    spec = module_spec("mod-1", ECHO, "Echo")
    await old.load(spec)
    await old.start("mod-1")
    await old.exec("mod-1", "set", ["input", "hdmi2"])
    await new.load(spec)

    await old.stop("mod-1")
    snapshot = await old.status_snapshot(["mod-1", "not-here"])
    await new.restore_status("mod-1", snapshot["mod-1"])
    await new.start("mod-1")

    assert snapshot == {"mod-1": {"input": "hdmi2"}}
    assert new.state("mod-1") == {"input": "hdmi2"}
    await new.stop_all()


async def test_modules_this_server_does_not_run_are_found_through_the_lookup(
    manager: ModuleManager,
) -> None:
    remote = StubModule("remote-1", "Display")

    def lookup(module_id: str) -> ModuleHandle | None:
        return remote if module_id == "remote-1" else None

    manager.lookup = lookup
    await manager.load(module_spec("local-1", ECHO, "Echo", name="Display"))
    await manager.start("local-1")
    manager.set_systems([SystemSpec("sys-1", "Room", ("local-1", "remote-1"))])

    assert manager.find("remote-1") is remote
    assert manager.find("nowhere") is None
    assert await manager.systems.exec("sys-1", "Display", 2, "power", [True]) == "remote-1.power"
    assert await manager.systems.exec("sys-1", "Display", 1, "echo", ["x"]) == "x"
    with pytest.raises(NotFound):
        manager.handle("remote-1")  # local only


async def test_system_calls_reach_a_stopped_module_with_409(manager: ModuleManager) -> None:
    await manager.load(module_spec("mod-1", ECHO, "Echo", name="Display"))
    manager.upsert_system(SystemSpec("sys-1", "Room", ("mod-1",)))

    with pytest.raises(Conflict):
        await manager.systems.exec("sys-1", "Display", 1, "echo", ["x"])

    manager.remove_system("sys-1")
    with pytest.raises(NotFound):
        manager.systems.state("sys-1")


async def test_a_failing_on_load_keeps_the_module_loaded_and_stopped(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    write_driver(
        "needs_key.py",
        """
        from app.runtime import Driver

        class NeedsKey(Driver):
            async def on_load(self) -> None:
                self.key = self.settings["key"]
        """,
    )

    with pytest.raises(DriverFailed, match="on_load failed: 'key'"):
        await manager.load(module_spec("mod-1", "needs_key.py", "NeedsKey"))
    assert manager.is_loaded("mod-1")
    assert not manager.is_running("mod-1")

    await manager.update(module_spec("mod-1", "needs_key.py", "NeedsKey", settings={"key": 1}))
    await manager.start("mod-1")  # loads again first, now with its key
    assert manager.is_running("mod-1")


async def test_unloading_a_module_that_never_started_cancels_its_tasks(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    write_driver(
        "warmup.py",
        """
        import asyncio

        from app.runtime import Driver

        class Warmup(Driver):
            async def on_load(self) -> None:
                self.spawn(self._cache())

            async def _cache(self) -> None:
                self.settings["events"].append("caching")
                try:
                    await asyncio.Event().wait()
                finally:
                    self.settings["events"].append("cancelled")
        """,
    )
    events: list[str] = []
    await manager.load(module_spec("mod-1", "warmup.py", "Warmup", settings={"events": events}))
    await eventually(lambda: events == ["caching"])

    await manager.unload("mod-1")

    assert events == ["caching", "cancelled"]
