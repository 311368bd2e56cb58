"""A module's lifecycle and calls, driven through the manager with the Probe driver."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from app.errors import Conflict, DriverFailed, GatewayTimeout, InvalidField, NotFound
from app.link import LinkConnection, LinkRequestError
from app.runtime import ModuleManager
from tests.unit.link.memory import memory_pair
from tests.unit.runtime.conftest import (
    Changes,
    DriverWriter,
    eventually,
    module_spec,
    probe_spec,
)

Journal = list[tuple[str, str]]


@pytest.fixture
def journal() -> Journal:
    return []


@pytest.fixture
async def running(manager: ModuleManager, probe: str, journal: Journal) -> str:
    await manager.load(probe_spec("mod-1", journal))
    await manager.start("mod-1")
    return "mod-1"


async def test_exec_returns_the_result_of_coroutine_and_plain_methods(
    manager: ModuleManager, running: str
) -> None:
    assert await manager.exec(running, "add", [1], {"b": 5}) == 6
    assert await manager.exec(running, "double", [21]) == 42


@pytest.mark.parametrize("method", ["nothing", "_private", "on_stop", "spawn", "context"])
async def test_an_unknown_private_or_engine_method_is_not_found(
    manager: ModuleManager, running: str, method: str
) -> None:
    with pytest.raises(NotFound, match=f"has no method '{method}'"):
        await manager.exec(running, method)


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "reason"),
    [
        ([], {}, "args", "missing a required argument: 'a'"),
        ([1, 2, 3], {}, "args", "too many positional arguments"),
        ([1], {"c": 1}, "kwargs", "got an unexpected keyword argument 'c'"),
        ([1], {"a": 1}, "kwargs", "multiple values for argument 'a'"),
    ],
)
async def test_arguments_that_do_not_fit_are_a_422_naming_the_field(
    manager: ModuleManager,
    running: str,
    args: list[int],
    kwargs: dict[str, int],
    field: str,
    reason: str,
) -> None:
    with pytest.raises(InvalidField) as caught:
        await manager.exec(running, "add", args, kwargs)

    assert (caught.value.status, caught.value.field, caught.value.reason) == (422, field, reason)


async def test_a_type_error_inside_the_driver_is_a_driver_failure(
    manager: ModuleManager, running: str
) -> None:
    lines = Changes()
    manager.handle(running).subscribe_debug(lines)

    with pytest.raises(DriverFailed) as caught:
        await manager.exec(running, "broken")

    assert caught.value.status == 500
    assert caught.value.detail == "object of type 'NoneType' has no len()"
    assert caught.value.extensions["exception"] == "TypeError"
    assert lines.seen[0][0] == "error"
    assert "Traceback" in lines.seen[0][1]
    assert await manager.exec(running, "add", [1]) == 3  # still running


async def test_a_call_outliving_its_timeout_is_a_504_and_is_cancelled(
    manager: ModuleManager, running: str, journal: Journal
) -> None:
    with pytest.raises(GatewayTimeout, match=r"hang did not return within 0\.05 s"):
        await manager.exec(running, "hang", timeout=0.05)

    assert journal[-2:] == [("hang", running), ("cancelled", running)]


async def test_a_call_over_the_link_times_out_in_its_own_task_and_the_link_reads_on(
    manager: ModuleManager, running: str, journal: Journal
) -> None:
    """The link answers a request in the task that read it until the answer waits; the
    deadline then cancels that task alone, never the link's reading."""

    async def exec_(args: dict[str, Any]) -> Any:
        return await manager.exec(running, args["method"], args["args"], timeout=args["timeout"])

    master_end, edge_end = memory_pair()
    master = LinkConnection(master_end, handlers={}, name="edge")
    edge = LinkConnection(edge_end, handlers={"exec": exec_}, name="master")
    runs = [asyncio.create_task(master.run()), asyncio.create_task(edge.run())]
    try:
        with pytest.raises(LinkRequestError, match=r"hang did not return within 0\.05 s"):
            await master.request("exec", {"method": "hang", "args": [], "timeout": 0.05})
        assert await master.request("exec", {"method": "add", "args": [1], "timeout": 1}) == 3
    finally:
        await master.close()
        await asyncio.gather(*runs)
    assert journal[-2:] == [("hang", running), ("cancelled", running)]


async def test_a_stopped_module_answers_409(manager: ModuleManager, running: str) -> None:
    await manager.stop(running)

    with pytest.raises(Conflict, match="is not running"):
        await manager.exec(running, "add", [1])


async def test_stopping_a_module_cancels_its_calls_in_flight(
    manager: ModuleManager, running: str, journal: Journal
) -> None:
    call = asyncio.create_task(manager.exec(running, "hang", timeout=5))
    await eventually(lambda: ("hang", running) in journal)

    await manager.stop(running)

    with pytest.raises(Conflict, match="stopped during hang"):
        await call
    assert ("cancelled", running) in journal


async def test_a_call_runs_in_its_callers_task_and_leaves_it_uncancelled(
    manager: ModuleManager, running: str
) -> None:
    async def caller() -> int:
        with pytest.raises(GatewayTimeout):
            await manager.exec(running, "hang", timeout=0.01)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(0.02)  # no cancellation left over for the caller
        return int(await manager.exec(running, "add", [1]))

    before = len(asyncio.all_tasks())
    assert await asyncio.create_task(caller()) == 3
    assert len(asyncio.all_tasks()) == before


async def test_cancelling_the_caller_cancels_the_call_and_is_no_engine_error(
    manager: ModuleManager, running: str, journal: Journal
) -> None:
    call = asyncio.create_task(manager.exec(running, "hang", timeout=5))
    await eventually(lambda: ("hang", running) in journal)

    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    assert ("cancelled", running) in journal
    assert await manager.exec(running, "add", [1]) == 3


async def test_a_failing_on_start_leaves_the_module_stopped_with_the_error(
    manager: ModuleManager, probe: str, journal: Journal
) -> None:
    await manager.load(probe_spec("mod-1", journal, fail_start=True))

    with pytest.raises(DriverFailed, match="on_start failed: the device refused"):
        await manager.start("mod-1")

    assert not manager.is_running("mod-1")
    assert manager.describe("mod-1")["error"] == "on_start failed: the device refused"
    assert journal == [("start", "mod-1"), ("stop", "mod-1")]  # on_stop cleans up


async def test_a_hanging_on_start_times_out(
    manager: ModuleManager, probe: str, journal: Journal
) -> None:
    impatient = ModuleManager(manager.repository, hook_timeout=0.05)
    await impatient.load(probe_spec("mod-1", journal, hang_start=True))

    with pytest.raises(DriverFailed, match=r"on_start failed: timed out after 0\.05 s"):
        await impatient.start("mod-1")

    assert not impatient.is_running("mod-1")
    assert journal == [("start", "mod-1"), ("stop", "mod-1")]


async def test_a_failing_on_stop_still_stops_the_module(
    manager: ModuleManager, probe: str, journal: Journal
) -> None:
    await manager.load(probe_spec("mod-1", journal, fail_stop=True))
    await manager.start("mod-1")

    await manager.stop("mod-1")

    assert not manager.is_running("mod-1")
    assert manager.describe("mod-1")["error"] == "on_stop failed: cannot close"


async def test_a_successful_start_clears_the_last_error(
    manager: ModuleManager, probe: str, journal: Journal
) -> None:
    spec = probe_spec("mod-1", journal, fail_start=True)
    await manager.load(spec)
    with pytest.raises(DriverFailed):
        await manager.start("mod-1")

    await manager.update(replace(spec, settings={"journal": journal}))
    await manager.start("mod-1")

    assert manager.describe("mod-1") == {
        "id": "mod-1",
        "name": "Probe",
        "driver_id": "drv-Probe",
        "role": "service",
        "running": True,
        "error": None,
    }


async def test_new_settings_restart_a_running_module(
    manager: ModuleManager, running: str, journal: Journal, write_driver: DriverWriter
) -> None:
    spec = manager.handle(running).spec

    await manager.update(replace(spec, settings={**spec.settings, "marker": "new"}))

    assert journal == [("start", running), ("stop", running), ("start", running)]
    assert await manager.exec(running, "setting_of", ["marker"]) == "new"


async def test_a_driver_with_on_update_applies_changes_in_place(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    write_driver(
        "inplace.py",
        """
        from app.runtime import Driver

        class InPlace(Driver):
            async def on_start(self) -> None:
                self.status["starts"] = self.status.get("starts", 0) + 1

            async def on_update(self) -> None:
                self.status["level"] = self.settings["level"]
        """,
    )
    spec = module_spec("mod-1", "inplace.py", "InPlace", settings={"level": 1})
    await manager.load(spec)
    await manager.start("mod-1")

    await manager.update(replace(spec, settings={"level": 7}))

    assert manager.state("mod-1") == {"starts": 1, "level": 7}


async def test_background_tasks_are_cancelled_when_the_module_stops(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    events: list[str] = []
    write_driver(
        "ticker.py",
        """
        import asyncio

        from app.runtime import Driver

        class Ticker(Driver):
            async def on_start(self) -> None:
                self.spawn(self._tick())

            async def on_stop(self) -> None:
                self.settings["events"].append("on_stop")

            async def _tick(self) -> None:
                self.settings["events"].append("ticking")
                try:
                    await asyncio.Event().wait()
                finally:
                    self.settings["events"].append("cancelled")
        """,
    )
    await manager.load(module_spec("mod-1", "ticker.py", "Ticker", settings={"events": events}))
    await manager.start("mod-1")
    await eventually(lambda: bool(events))

    await manager.stop("mod-1")

    assert events == ["ticking", "cancelled", "on_stop"]


async def test_a_failing_background_task_is_logged_to_the_debug_stream(
    manager: ModuleManager, write_driver: DriverWriter
) -> None:
    write_driver(
        "crashy.py",
        """
        from app.runtime import Driver

        class Crashy(Driver):
            async def on_start(self) -> None:
                self.spawn(self._crash(), name="poller")

            async def _crash(self) -> None:
                raise RuntimeError("poll failed")
        """,
    )
    await manager.load(module_spec("mod-1", "crashy.py", "Crashy"))
    lines = Changes()
    manager.handle("mod-1").subscribe_debug(lines)

    await manager.start("mod-1")

    await lines.wait_until(lambda: any("mod-1:poller failed" in line for _, line in lines.seen))
    assert manager.is_running("mod-1")


async def test_restored_status_reaches_state_and_subscribers_before_start(
    manager: ModuleManager, probe: str, journal: Journal
) -> None:
    await manager.load(probe_spec("mod-1", journal))
    changes = Changes()
    manager.handle("mod-1").subscribe_status(changes)

    await manager.restore_status("mod-1", {"power": True, "input": "hdmi2"})

    assert manager.state("mod-1") == {"power": True, "input": "hdmi2"}
    assert changes.seen == [("power", True), ("input", "hdmi2")]


async def test_a_running_module_keeps_its_own_status(manager: ModuleManager, running: str) -> None:
    with pytest.raises(Conflict, match="is running"):
        await manager.restore_status(running, {"power": True})


async def test_status_survives_a_restart(manager: ModuleManager, running: str) -> None:
    await manager.exec(running, "flag", ["on"])

    await manager.stop(running)
    await manager.start(running)

    assert manager.state(running) == {"flag": "on"}
