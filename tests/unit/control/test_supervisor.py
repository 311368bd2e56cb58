from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.control.state import (
    EPOCH_RESERVE,
    Controller,
    ControlState,
    EdgePolicy,
    SupervisorState,
    control_from_document,
    persisted_document,
)
from app.control.supervisor import (
    Action,
    BootWaitOver,
    CancelFailoverTimer,
    ConfigChanged,
    ControlUnconfirmed,
    DuplicateRefused,
    EdgeAlive,
    EventKind,
    FailoverTimerFired,
    LinkDown,
    LinkUp,
    LocationCreated,
    Persist,
    RecordEvent,
    Reject,
    RestoreRequested,
    SendControl,
    StartFailoverTimer,
    StartMasterModules,
    StopMasterModules,
    TakeoverRequested,
    TransferStatus,
    Transition,
    WindowOpened,
    retry_after,
    step,
)
from app.control.windows import RestoreWindow

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)
FAILOVER = EdgePolicy(failover=True, timeout=20, window=None)
NO_FAILOVER = EdgePolicy(failover=False, timeout=20, window=None)
OPEN_NOW = RestoreWindow("* * * * *", 120)
SHUT_NOW = RestoreWindow("0 3 * * *", 3600)  # 03:00-04:00 UTC; the tests run around noon


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def supervised(
    controller: Controller = "edge",
    *,
    online: bool = True,
    epoch: int = 3,
    policy: EdgePolicy = FAILOVER,
    **changes: Any,
) -> SupervisorState:
    control = replace(
        ControlState.unknown(T0), controller=controller, epoch=epoch, online=online, **changes
    )
    return SupervisorState(control, policy)


def dropped(policy: EdgePolicy = FAILOVER) -> SupervisorState:
    """An edge in control whose link dropped at 0 s."""
    return step(supervised("edge", policy=policy), LinkDown(at(0))).state


def failed_over() -> SupervisorState:
    """An edge taken over by the master at 20 s, still disconnected."""
    return step(dropped(), FailoverTimerFired(at(20))).state


def effects(transition: Transition) -> list[Action]:
    """The actions besides persisting and recording."""
    return [a for a in transition.actions if not isinstance(a, Persist)]


def assert_decided(transition: Transition, kind: EventKind, by: str | None = None) -> None:
    """The new state and its event are recorded, as one action, before anything is acted
    on; no other action records anything."""
    control = transition.state.control
    event = RecordEvent(kind, control.reason, control.controller, control.epoch, control.since, by)
    assert transition.actions[0] == Persist(control, event)
    assert not any(isinstance(a, Persist) for a in transition.actions[1:])


def assert_unchanged(transition: Transition, before: SupervisorState) -> None:
    assert transition.actions == ()
    assert transition.state == before


# --- LinkUp: negotiation ------------------------------------------------------------


def test_a_new_edge_that_connects_gets_control() -> None:
    moved = step(supervised("none", online=False, epoch=0), LinkUp(at(0), False, False))
    assert_decided(moved, "connected")
    assert effects(moved) == [SendControl("edge", 1)]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 1, True)
    assert control.reason.startswith("edge connected: ")


def test_an_edge_back_before_the_timeout_keeps_control_and_the_timer_is_cancelled() -> None:
    moved = step(dropped(), LinkUp(at(5), True, False))
    assert_decided(moved, "connected")
    assert effects(moved) == [CancelFailoverTimer(), SendControl("edge", 3)]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 3, True)
    assert (control.failover_deadline, control.offline_since) == (None, None)


def test_the_master_keeps_control_of_a_fresh_edge_outside_the_window() -> None:
    before = replace(failed_over(), policy=replace(FAILOVER, window=SHUT_NOW))
    moved = step(before, LinkUp(at(30), False, False))
    assert_decided(moved, "connected")
    assert effects(moved) == [SendControl("master", 4)]
    control = moved.state.control
    assert (control.controller, control.epoch, control.failover_active) == ("master", 4, True)
    assert control.online
    assert "already controls" in control.reason


@pytest.mark.parametrize(
    ("devices_loaded", "booting", "window", "transfers", "words"),
    [
        (True, False, None, False, "already runs its devices"),
        (False, False, OPEN_NOW, True, "restore window"),
        (False, True, None, False, "still booting"),
    ],
)
def test_when_the_edge_wins_from_the_master_the_master_stops_first(
    devices_loaded: bool,
    booting: bool,
    window: RestoreWindow | None,
    transfers: bool,
    words: str,
) -> None:
    before = replace(failed_over(), policy=replace(FAILOVER, window=window))
    moved = step(before, LinkUp(at(30), devices_loaded, booting))
    assert_decided(moved, "connected")
    transfer = [TransferStatus("edge")] if transfers else []
    assert effects(moved) == [StopMasterModules(), *transfer, SendControl("edge", 5)]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 5, True)
    assert (control.failover_active, control.failover_time) == (False, None)
    assert words in control.reason


# --- LinkDown -----------------------------------------------------------------------


def test_a_drop_with_failover_starts_the_timer() -> None:
    moved = step(supervised("edge"), LinkDown(at(0)))
    assert_decided(moved, "disconnected")
    assert effects(moved) == [StartFailoverTimer(at(20))]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 3, False)
    assert (control.failover_deadline, control.offline_since) == (at(20), at(0))
    assert "takes over at 2024-06-05 12:00:20 UTC" in control.reason


def test_a_drop_without_failover_only_records_why_nothing_happens() -> None:
    moved = step(supervised("edge", policy=NO_FAILOVER), LinkDown(at(0)))
    assert_decided(moved, "disconnected")
    assert effects(moved) == []
    control = moved.state.control
    assert (control.controller, control.online, control.failover_deadline) == ("edge", False, None)
    assert "failover is off" in control.reason
    assert retry_after(moved.state, at(1)) is None


def test_a_drop_while_the_master_controls_starts_no_timer() -> None:
    moved = step(supervised("master"), LinkDown(at(0)))
    assert_decided(moved, "disconnected")
    assert effects(moved) == []
    assert moved.state.control.controller == "master"
    assert "master keeps control" in moved.state.control.reason


def test_a_second_drop_notice_changes_nothing() -> None:
    before = dropped()
    assert_unchanged(step(before, LinkDown(at(4))), before)


# --- failover timer -----------------------------------------------------------------


def test_the_master_takes_over_when_the_timer_fires_for_an_absent_edge() -> None:
    moved = step(dropped(), FailoverTimerFired(at(20)))
    assert_decided(moved, "failover")
    assert effects(moved) == [CancelFailoverTimer(), TransferStatus("master"), StartMasterModules()]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("master", 4, False)
    assert (control.failover_active, control.failover_time) == (True, at(20))
    assert control.failover_deadline is None
    assert "20 s" in control.reason


def test_a_timer_for_an_edge_that_came_back_is_stale() -> None:
    back = step(dropped(), LinkUp(at(5), True, False)).state
    assert_unchanged(step(back, FailoverTimerFired(at(20))), back)


def test_a_timer_that_fires_before_a_moved_deadline_is_stale() -> None:
    later = step(dropped(), ConfigChanged(at(5), True, 60, None)).state
    assert_unchanged(step(later, FailoverTimerFired(at(20))), later)
    assert step(later, FailoverTimerFired(at(60))).state.control.controller == "master"


# --- restore window -----------------------------------------------------------------


def test_a_window_opening_hands_a_connected_edge_back() -> None:
    connected = step(failed_over(), LinkUp(at(30), False, False)).state
    moved = step(connected, WindowOpened(at(60)))
    assert_decided(moved, "restore")
    assert effects(moved) == [StopMasterModules(), TransferStatus("edge"), SendControl("edge", 5)]
    control = moved.state.control
    assert (control.controller, control.failover_active, control.failover_time) == (
        "edge",
        False,
        None,
    )
    assert "restore window" in control.reason


@pytest.mark.parametrize(
    "before", [failed_over(), supervised("edge"), dropped()], ids=["edge absent", "edge", "dropped"]
)
def test_a_window_opening_changes_nothing_unless_the_master_holds_a_connected_edge(
    before: SupervisorState,
) -> None:
    assert_unchanged(step(before, WindowOpened(at(60))), before)


# --- manual restore and takeover ----------------------------------------------------


def test_a_restore_hands_back_with_the_master_stopping_first() -> None:
    connected = step(failed_over(), LinkUp(at(30), False, False)).state
    moved = step(connected, RestoreRequested(at(40), "ops@example.com"))
    assert_decided(moved, "restore", by="ops@example.com")
    assert effects(moved) == [StopMasterModules(), TransferStatus("edge"), SendControl("edge", 5)]
    assert moved.state.control.controller == "edge"
    assert "ops@example.com" in moved.state.control.reason


def test_a_restore_to_a_disconnected_edge_is_rejected() -> None:
    before = failed_over()
    moved = step(before, RestoreRequested(at(40), "ops"))
    assert moved.actions == (
        Reject("the edge is not connected: control can only go back to a connected edge"),
    )
    assert moved.state == before


def test_a_restore_when_the_edge_already_controls_is_a_no_op() -> None:
    before = supervised("edge")
    assert_unchanged(step(before, RestoreRequested(at(1), "ops")), before)


def test_a_takeover_of_a_connected_edge_stops_the_edge_first() -> None:
    moved = step(supervised("edge"), TakeoverRequested(at(1), "ops"))
    assert_decided(moved, "takeover", by="ops")
    assert effects(moved) == [
        SendControl("master", 4),
        TransferStatus("master"),
        StartMasterModules(),
    ]
    control = moved.state.control
    assert (control.controller, control.epoch, control.failover_active) == ("master", 4, False)
    assert "on request by ops" in control.reason


def test_a_takeover_of_a_disconnected_edge_cancels_the_pending_failover() -> None:
    moved = step(dropped(), TakeoverRequested(at(5), "ops"))
    assert_decided(moved, "takeover", by="ops")
    assert effects(moved) == [CancelFailoverTimer(), TransferStatus("master"), StartMasterModules()]
    assert moved.state.control.failover_deadline is None
    assert "while the edge was disconnected" in moved.state.control.reason


def test_a_takeover_when_the_master_already_controls_is_a_no_op() -> None:
    before = supervised("master")
    assert_unchanged(step(before, TakeoverRequested(at(1), "ops")), before)


def taken_over() -> SupervisorState:
    """A connected edge the master took over at 1 s (epoch 4), its answer awaited."""
    return step(supervised("edge"), TakeoverRequested(at(1), "ops")).state


def test_a_takeover_the_edge_did_not_confirm_leaves_the_devices_with_the_edge() -> None:
    moved = step(taken_over(), ControlUnconfirmed(at(2), epoch=4, why="no answer in 30 s"))
    assert_decided(moved, "unconfirmed")
    assert effects(moved) == [StartFailoverTimer(at(22))]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", 5, False)
    assert control.failover_deadline == at(22)
    assert "did not confirm" in control.reason and "no answer in 30 s" in control.reason


def test_an_unconfirmed_takeover_without_failover_waits_for_the_edge() -> None:
    before = replace(taken_over(), policy=NO_FAILOVER)
    moved = step(before, ControlUnconfirmed(at(2), epoch=4, why="link closed"))
    assert_decided(moved, "unconfirmed")
    assert effects(moved) == []
    assert moved.state.control.controller == "edge"
    assert moved.state.control.failover_deadline is None


def test_an_unconfirmed_control_of_an_older_epoch_changes_nothing() -> None:
    before = taken_over()
    assert_unchanged(step(before, ControlUnconfirmed(at(2), epoch=3, why="late")), before)


def test_an_unconfirmed_handover_to_the_edge_waits_for_the_link_to_drop() -> None:
    connected = step(failed_over(), LinkUp(at(30), False, False)).state
    restored = step(connected, RestoreRequested(at(40), "ops")).state
    assert_unchanged(step(restored, ControlUnconfirmed(at(41), epoch=5, why="x")), restored)


# --- master boot --------------------------------------------------------------------


def booted(controller: Controller, policy: EdgePolicy = FAILOVER) -> SupervisorState:
    persisted = replace(ControlState.unknown(T0), controller=controller, epoch=6, online=True)
    return SupervisorState.at_master_boot(persisted, policy, at(0))


def test_an_absent_edge_the_master_controlled_is_taken_back_at_once() -> None:
    moved = step(booted("master"), BootWaitOver(at(6)))
    assert_decided(moved, "resume")
    assert effects(moved) == [StartMasterModules()]
    control = moved.state.control
    assert (control.controller, control.epoch, control.online) == ("master", 6, False)
    assert "resumes control" in control.reason


def test_an_absent_edge_in_control_gets_a_failover_timer() -> None:
    moved = step(booted("edge"), BootWaitOver(at(6)))
    assert_decided(moved, "disconnected")
    assert effects(moved) == [StartFailoverTimer(at(26))]
    assert "did not connect while the master booted" in moved.state.control.reason
    assert retry_after(moved.state, at(16)) == 10


def test_an_absent_edge_without_failover_is_left_alone() -> None:
    moved = step(booted("edge", NO_FAILOVER), BootWaitOver(at(6)))
    assert_decided(moved, "disconnected")
    assert effects(moved) == []
    assert "failover is off" in moved.state.control.reason


def test_an_edge_never_seen_before_gets_a_failover_timer() -> None:
    moved = step(SupervisorState.at_master_boot(None, FAILOVER, at(0)), BootWaitOver(at(6)))
    assert effects(moved) == [StartFailoverTimer(at(26))]


def test_a_location_created_later_is_awaited_from_its_creation() -> None:
    created = SupervisorState.at_master_boot(None, FAILOVER, at(0))
    moved = step(created, LocationCreated(at(0)))
    assert_decided(moved, "created")
    assert effects(moved) == [StartFailoverTimer(at(20))]
    assert moved.state.control.reason.startswith(
        "the location was created and its edge has not connected yet; the master takes over at"
    )
    assert_unchanged(step(moved.state, LocationCreated(at(1))), moved.state)
    taken = step(moved.state, FailoverTimerFired(at(20)))
    assert_decided(taken, "failover")
    assert taken.state.control.controller == "master"


def test_a_location_nobody_runs_says_so_and_how_to_start_it() -> None:
    created = SupervisorState.at_master_boot(None, NO_FAILOVER, at(0))
    moved = step(created, LocationCreated(at(0)))
    assert effects(moved) == []
    reason = moved.state.control.reason
    assert moved.state.control.controller == "none"
    assert "failover is off: nobody runs its devices until its edge connects" in reason
    assert "takeover" in reason


def test_an_edge_that_connected_during_the_wait_is_left_to_negotiation() -> None:
    connected = step(booted("master"), LinkUp(at(2), False, True)).state
    assert_unchanged(step(connected, BootWaitOver(at(6))), connected)


def test_the_boot_wait_acts_only_once() -> None:
    once = step(booted("master"), BootWaitOver(at(6))).state
    assert_unchanged(step(once, BootWaitOver(at(7))), once)


# --- configuration changes ----------------------------------------------------------


def test_turning_failover_off_cancels_the_pending_takeover() -> None:
    moved = step(dropped(), ConfigChanged(at(5), False, 20, None))
    assert_decided(moved, "config")
    assert effects(moved) == [CancelFailoverTimer()]
    assert moved.state.control.failover_deadline is None
    assert "failover was turned off" in moved.state.control.reason
    assert moved.state.policy == NO_FAILOVER


def test_a_shorter_timeout_counts_from_the_drop() -> None:
    moved = step(dropped(), ConfigChanged(at(5), True, 10, None))
    assert_decided(moved, "config")
    assert effects(moved) == [StartFailoverTimer(at(10))]
    assert moved.state.control.failover_deadline == at(10)


def test_a_timeout_already_over_takes_over_at_once() -> None:
    moved = step(dropped(), ConfigChanged(at(15), True, 10, None))
    assert_decided(moved, "failover")
    assert effects(moved) == [CancelFailoverTimer(), TransferStatus("master"), StartMasterModules()]
    assert moved.state.control.failover_time == at(15)


def test_turning_failover_on_for_an_absent_edge_starts_the_timer_from_the_drop() -> None:
    moved = step(dropped(NO_FAILOVER), ConfigChanged(at(5), True, 20, None))
    assert effects(moved) == [StartFailoverTimer(at(20))]


@pytest.mark.parametrize(
    ("before", "change"),
    [
        (dropped(), ConfigChanged(at(5), True, 20, SHUT_NOW)),
        (supervised("edge"), ConfigChanged(at(5), True, 5, None)),
        (failed_over(), ConfigChanged(at(25), False, 5, None)),
        (dropped(NO_FAILOVER), ConfigChanged(at(5), False, 5, None)),
    ],
    ids=["same timeout", "edge connected", "master in control", "failover stays off"],
)
def test_a_change_with_nothing_pending_only_updates_the_policy(
    before: SupervisorState, change: ConfigChanged
) -> None:
    moved = step(before, change)
    assert moved.actions == ()
    assert moved.state == replace(
        before, policy=EdgePolicy(change.failover, change.timeout, change.window)
    )


# --- retry_after and time ----------------------------------------------------------


def test_retry_after_counts_down_to_the_deadline() -> None:
    state = dropped()
    assert retry_after(state, at(5)) == 15
    assert retry_after(state, at(25)) == 0
    assert retry_after(supervised("edge"), at(5)) is None


def test_events_take_any_aware_time_and_refuse_naive_ones() -> None:
    sydney = at(0).astimezone(ZoneInfo("Australia/Sydney"))
    assert LinkDown(sydney).now == at(0)
    assert LinkDown(sydney).now.tzinfo is UTC
    with pytest.raises(ValueError, match="no time zone"):
        LinkDown(datetime(2024, 6, 5, 12))


# --- signs of life from the edge's witness -------------------------------------------


def test_an_edge_alive_at_its_api_holds_the_failover_off_and_is_recorded_once() -> None:
    first = step(dropped(), EdgeAlive(at(5), link_error="no answer to pings for 3 s"))

    assert_decided(first, "alive")
    assert effects(first) == [StartFailoverTimer(at(25))]
    control = first.state.control
    assert (control.controller, control.failover_deadline) == ("edge", at(25))
    assert "edge alive at its API, its link is down: no answer to pings" in control.reason

    again = step(first.state, EdgeAlive(at(6)))
    assert again.actions == (StartFailoverTimer(at(26)),), "only the deadline moves"
    assert step(again.state, FailoverTimerFired(at(25))).actions == (), "a stale timer"
    assert step(again.state, FailoverTimerFired(at(26))).state.control.controller == "master"


def test_a_sign_of_life_changes_nothing_without_a_pending_failover() -> None:
    for state in (supervised("edge"), failed_over(), dropped(NO_FAILOVER)):
        assert step(state, EdgeAlive(at(5))).actions == ()


def test_epochs_reserved_before_a_restart_are_never_handed_out_again() -> None:
    body = {"controller": "edge", "epoch": 4, "epoch_reserved": 104, "since": T0.isoformat()}
    control = control_from_document(body, T0)
    state = SupervisorState.at_master_boot(control, FAILOVER, T0)

    taken = step(state, TakeoverRequested(at(1), by="ops")).state.control

    assert (control.epoch, taken.epoch) == (4, 105)
    assert persisted_document(taken)["epoch_reserved"] == 105 + EPOCH_RESERVE


# --- the master holds the devices and the edge runs them too ------------------------------


def test_an_edge_that_can_hear_the_master_is_left_to_yield() -> None:
    state = failed_over()
    assert_unchanged(step(state, EdgeAlive(at(30), deaf=False)), state)


def test_the_master_yields_to_a_running_edge_that_cannot_hear_it() -> None:
    state = failed_over()
    epoch = state.control.epoch
    yielded = step(state, EdgeAlive(at(30), link_error="timed out", deaf=True))

    assert_decided(yielded, "yield")
    assert effects(yielded) == [StopMasterModules(), StartFailoverTimer(at(50))]
    control = yielded.state.control
    assert (control.controller, control.epoch, control.online) == ("edge", epoch + 1, False)
    assert (control.edge_alive_at, control.failover_active) == (at(30), False)
    assert "does not reach the master's witness" in control.reason
    # From then on it is an edge alive at its API: each sign of life moves the deadline.
    again = step(yielded.state, EdgeAlive(at(31), deaf=True))
    assert again.actions == (StartFailoverTimer(at(51)),)


def test_without_failover_the_master_yields_and_waits_for_no_deadline() -> None:
    taken = supervised("master", online=False, policy=NO_FAILOVER)
    yielded = step(taken, EdgeAlive(at(30), deaf=True))
    assert effects(yielded) == [StopMasterModules()]
    assert yielded.state.control.failover_deadline is None


def test_a_connected_edge_is_never_yielded_to_by_its_witness() -> None:
    state = supervised("master", online=True)
    assert_unchanged(step(state, EdgeAlive(at(5), deaf=True)), state)


def test_a_refused_duplicate_is_recorded_and_changes_nothing() -> None:
    state = supervised("edge", epoch=7)
    refused = step(state, DuplicateRefused(at(5), "a second process: refused as a duplicate"))
    assert refused.state == state
    record = RecordEvent("duplicate", "a second process: refused as a duplicate", "edge", 7, at(5))
    assert refused.actions == (Persist(state.control, record),)
