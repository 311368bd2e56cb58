"""The executor of the supervisor's decisions: timers, admissions, the order of handovers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from app.control.state import Controller, ControlState, EdgePolicy, SupervisorState
from app.control.supervisor import LinkDown, LinkUp, RestoreRequested, TakeoverRequested
from app.control.windows import RestoreWindow
from app.errors import Unavailable
from app.link import CloseCode, Control, LinkConnection, LinkTimeout
from app.master.supervision import EdgeSupervisor, load_persisted
from app.store.sqlite import SqliteStore
from tests.support.wait import wait_until

EDGE = "edge-1"
STATUS = {"mod-1": {"power": True}}
ALWAYS_OPEN = RestoreWindow("* * * * *", 120)


class Master:
    """Records what the supervisor asks of the master and of the edge, in order."""

    def __init__(self, *, control_fails: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.connected = True
        #: What a ``control`` request raises (an edge that does not answer).
        self.control_fails = control_fails

    def link(self, edge_id: str) -> LinkConnection | None:
        # The supervisor only calls ``request`` on the link; ``Handover`` asks for a whole
        # LinkConnection all the same (app/master/supervision.py).
        return cast(LinkConnection, self) if self.connected else None

    async def request(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        self.calls.append(("edge", op, args))
        if op == "control" and self.control_fails is not None:
            raise self.control_fails
        return {"status": STATUS} if args.get("controller") == "master" else {}

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.calls.append(("close", code))
        self.connected = False

    async def start_modules(self, edge_id: str, status: Mapping[str, Any]) -> None:
        self.calls.append(("start", dict(status)))

    async def stop_modules(self, edge_id: str) -> dict[str, dict[str, Any]]:
        self.calls.append(("stop",))
        return STATUS

    def mirrored_status(self, edge_id: str) -> dict[str, dict[str, Any]]:
        return {}

    def control_changed(self, edge_id: str, state: ControlState) -> None:
        pass


def supervisor(
    store: SqliteStore,
    master: Master,
    *,
    controller: Controller = "edge",
    online: bool = True,
    policy: EdgePolicy | None = None,
    clock: Any = None,
) -> EdgeSupervisor:
    now = datetime.now(UTC)
    control = replace(ControlState.unknown(now), controller=controller, epoch=4, online=online)
    state = SupervisorState(control, policy or EdgePolicy(failover=True, timeout=20, window=None))
    extra = {"clock": clock} if clock else {}
    return EdgeSupervisor(EDGE, state, store=store, handover=master, **extra)


def connecting(*, devices_loaded: bool) -> LinkUp:
    return LinkUp(datetime.now(UTC), devices_loaded=devices_loaded, master_booting=False)


async def test_the_failover_timer_acts_even_when_the_wall_clock_lags_behind_it(
    store: SqliteStore,
) -> None:
    lagging = datetime.now(UTC)  # a wall clock that never catches up with the timer
    master = Master()
    watched = supervisor(
        store,
        master,
        policy=EdgePolicy(failover=True, timeout=0.05, window=None),
        clock=lambda: lagging,
    )

    await watched.handle(LinkDown(lagging))

    await wait_until(lambda: bool(master.calls), timeout=2, message="the failover")
    assert watched.state.control.controller == "master"
    assert master.calls == [("start", {})]
    persisted = await load_persisted(store, EDGE)
    assert persisted is not None and persisted.controller == "master"


async def test_an_edge_connecting_inside_its_window_gets_the_status_before_it_starts(
    store: SqliteStore,
) -> None:
    master = Master()
    policy = EdgePolicy(failover=True, timeout=20, window=ALWAYS_OPEN)
    watched = supervisor(store, master, controller="master", online=False, policy=policy)

    handshake = await watched.admit(connecting(devices_loaded=False))

    assert (handshake.controller, handshake.epoch) == ("master", 4)
    assert "restore window" in handshake.reason
    assert master.calls == [("stop",)], "the master stops before the edge hears anything"
    await watched.linked()
    assert master.calls == [
        ("stop",),
        ("edge", "state.sync", {"status": STATUS}),
        ("edge", "control", {"controller": "edge", "epoch": 5}),
    ]


async def test_an_edge_that_kept_its_devices_hears_it_in_the_handshake(
    store: SqliteStore,
) -> None:
    master = Master()
    watched = supervisor(store, master, controller="master", online=False)

    handshake = await watched.admit(connecting(devices_loaded=True))

    assert handshake == Control(controller="edge", epoch=5, reason=watched.state.control.reason)
    assert master.calls == [("stop",)]
    await watched.linked()
    assert master.calls == [("stop",)]


async def test_what_waited_for_the_link_is_dropped_after_a_newer_decision(
    store: SqliteStore,
) -> None:
    master = Master()
    policy = EdgePolicy(failover=True, timeout=20, window=ALWAYS_OPEN)
    watched = supervisor(store, master, controller="master", online=False, policy=policy)
    await watched.admit(connecting(devices_loaded=False))

    await watched.handle(TakeoverRequested(datetime.now(UTC) + timedelta(seconds=1), by="ops"))
    await watched.linked()

    assert [call[1] for call in master.calls if call[0] == "edge"] == ["control"]
    assert master.calls[-2:] == [
        ("edge", "control", {"controller": "master", "epoch": 6}),
        ("start", STATUS),
    ]


async def test_a_takeover_the_edge_does_not_confirm_never_starts_the_master(
    store: SqliteStore,
) -> None:
    master = Master(control_fails=LinkTimeout("edge did not answer control within 30 s"))
    watched = supervisor(store, master, controller="edge")

    with pytest.raises(Unavailable) as refused:
        await watched.handle(TakeoverRequested(datetime.now(UTC), by="ops"))

    assert master.calls == [
        ("edge", "control", {"controller": "master", "epoch": 5}),
        ("close", CloseCode.UNRESPONSIVE),
    ], "the link closed and nothing started"
    control = watched.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 6, False)
    assert control.failover_deadline is not None, "the failover path decides from here"
    assert "did not confirm" in refused.value.detail
    assert refused.value.headers["Retry-After"] == "20"
    persisted = await load_persisted(store, EDGE)
    assert persisted is not None and (persisted.controller, persisted.epoch) == ("edge", 6)
    await watched.handle(LinkDown(datetime.now(UTC)))  # the closed link's end
    assert watched.state.control == control
    watched.close()


async def test_a_takeover_whose_link_closed_meanwhile_never_starts_the_master(
    store: SqliteStore,
) -> None:
    master = Master()
    master.connected = False  # the link went between the decision and the message
    watched = supervisor(store, master, controller="edge")

    with pytest.raises(Unavailable):
        await watched.handle(TakeoverRequested(datetime.now(UTC), by="ops"))

    assert master.calls == []
    assert watched.state.control.controller == "edge"
    watched.close()


async def test_a_restore_the_edge_does_not_confirm_closes_its_link(store: SqliteStore) -> None:
    master = Master(control_fails=LinkTimeout("edge did not answer control within 30 s"))
    watched = supervisor(store, master, controller="master")

    with pytest.raises(Unavailable):
        await watched.handle(RestoreRequested(datetime.now(UTC), by="ops"))

    assert master.calls == [
        ("stop",),
        ("edge", "state.sync", {"status": STATUS}),
        ("edge", "control", {"controller": "edge", "epoch": 5}),
        ("close", CloseCode.UNRESPONSIVE),
    ]
    await watched.handle(LinkDown(datetime.now(UTC)))
    control = watched.state.control
    assert (control.controller, control.online) == ("edge", False)
    assert control.failover_deadline is not None, "the master takes over unless the edge runs"
    watched.close()


async def test_an_admission_the_edge_does_not_confirm_is_not_an_error(
    store: SqliteStore,
) -> None:
    master = Master(control_fails=LinkTimeout("edge did not answer control within 30 s"))
    policy = EdgePolicy(failover=True, timeout=20, window=ALWAYS_OPEN)
    watched = supervisor(store, master, controller="master", online=False, policy=policy)
    await watched.admit(connecting(devices_loaded=False))

    await watched.linked()

    assert master.calls[-1] == ("close", CloseCode.UNRESPONSIVE)
    watched.close()
