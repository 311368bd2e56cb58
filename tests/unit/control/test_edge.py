from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from app.control.edge import EdgeControlState, StartLocalModules, StopLocalModules, yield_due
from app.control.state import Side

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)
RETRY_S = 3.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def connected(controller: Side = "master", epoch: int = 4) -> EdgeControlState:
    state = EdgeControlState.at_boot(T0).on_link_up().state
    return state.on_control(controller, epoch).state


def test_a_booted_edge_runs_nothing_until_told_or_disconnected() -> None:
    state = EdgeControlState.at_boot(T0)
    assert not state.modules_running
    assert state.controller == "none"


def test_control_to_the_edge_starts_its_modules_once() -> None:
    state = EdgeControlState.at_boot(T0).on_link_up().state
    started = state.on_control("edge", 1)
    assert started.actions == (StartLocalModules(),)
    assert started.state.modules_running
    assert started.state.on_control("edge", 2).actions == ()


def test_control_to_the_master_stops_running_modules() -> None:
    stopped = connected("edge", 4).on_control("master", 5)
    assert stopped.actions == (StopLocalModules(),)
    assert not stopped.state.modules_running
    assert stopped.state.on_control("master", 5).actions == ()


def test_an_older_epoch_is_ignored() -> None:
    state = connected("edge", 4)
    late = state.on_control("master", 3)
    assert late.actions == ()
    assert late.state == state


def test_the_same_epoch_is_obeyed_again() -> None:
    # On every connection the master repeats the current decision with its epoch.
    state = connected("master", 4)
    assert state.on_control("master", 4).state == state


def test_a_dropped_link_keeps_the_modules_as_they_are() -> None:
    sides: tuple[Side, ...] = ("edge", "master")
    for controller in sides:
        state = connected(controller)
        lost = state.on_link_lost(at(0))
        assert lost.actions == ()
        assert lost.state.modules_running == state.modules_running
        assert lost.state.link_lost_at == at(0)


def test_a_second_drop_notice_keeps_the_first_drop_time() -> None:
    lost = connected().on_link_lost(at(0)).state
    assert lost.on_link_lost(at(2)).state.link_lost_at == at(0)


@pytest.mark.parametrize(
    ("failed_at", "starts"), [(0.5, False), (2.999, False), (3, True), (9, True)]
)
def test_the_edge_runs_locally_once_a_reconnect_fails_after_the_retry_delay(
    failed_at: float, starts: bool
) -> None:
    lost = connected("master").on_link_lost(at(0)).state
    after = lost.on_reconnect_failed(at(failed_at), RETRY_S, master_alive=False)
    assert (after.actions == (StartLocalModules(),)) == starts
    assert after.state.modules_running == starts


def test_further_failed_attempts_change_nothing() -> None:
    lost = connected("master").on_link_lost(at(0)).state
    running = lost.on_reconnect_failed(at(3), RETRY_S, master_alive=False).state
    again = running.on_reconnect_failed(at(6), RETRY_S, master_alive=False)
    assert again.actions == ()
    assert again.state == running


def test_an_edge_that_boots_without_a_master_runs_locally_after_the_retry_delay() -> None:
    booted = EdgeControlState.at_boot(T0)
    assert booted.on_reconnect_failed(at(1), RETRY_S, master_alive=False).actions == ()
    assert booted.on_reconnect_failed(at(3), RETRY_S, master_alive=False).actions == (
        StartLocalModules(),
    )


def test_the_time_without_a_link_counts_from_its_loss_and_is_unknown_before_the_first() -> None:
    booted = EdgeControlState.at_boot(T0)
    assert booted.unlinked_for(at(1)) == math.inf, "the link went before this process began"
    assert connected().unlinked_for(at(60)) == 0
    assert connected().on_link_lost(at(10)).state.unlinked_for(at(14)) == 4


def test_a_failed_attempt_while_the_link_is_up_is_ignored() -> None:
    assert (
        connected("master").on_reconnect_failed(at(60), RETRY_S, master_alive=False).actions == ()
    )


def test_the_masters_witness_makes_a_disconnected_edge_yield_and_hold_off() -> None:
    running = connected("edge", 4).on_link_lost(at(0)).state

    yielded = running.on_master_controls()
    assert yielded.actions == (StopLocalModules(),)
    assert not yielded.state.modules_running
    assert yielded.state.on_master_controls().actions == (), "nothing more to stop"
    # Once the master's witness no longer says so, the disconnect rule applies again.
    assert yielded.state.on_reconnect_failed(at(RETRY_S), RETRY_S, master_alive=False).actions == (
        StartLocalModules(),
    )


def test_the_masters_witness_changes_nothing_while_the_link_is_up() -> None:
    assert connected("edge", 4).on_master_controls().actions == ()


# --- a failure that proves the master is there ------------------------------------------


@pytest.mark.parametrize("running", [False, True])
def test_a_failed_attempt_the_master_answered_changes_nothing(running: bool) -> None:
    lost = connected("edge" if running else "master").on_link_lost(at(0)).state
    for seconds in (RETRY_S, 10 * RETRY_S):
        after = lost.on_reconnect_failed(at(seconds), RETRY_S, master_alive=True)
        assert after.actions == ()
        assert after.state == lost


def test_an_edge_booted_while_the_master_refuses_it_starts_nothing() -> None:
    booted = EdgeControlState.at_boot(T0)
    assert booted.on_reconnect_failed(at(60), RETRY_S, master_alive=True).actions == ()
    # The same edge, once the master no longer answers at all, runs its devices.
    assert booted.on_reconnect_failed(at(61), RETRY_S, master_alive=False).actions == (
        StartLocalModules(),
    )


def test_a_duplicate_refusal_stops_the_modules_and_starts_nothing() -> None:
    running = connected("edge", 4).on_link_lost(at(0)).state
    refused = running.on_duplicate()
    assert refused.actions == (StopLocalModules(),)
    assert not refused.state.modules_running
    assert refused.state.on_duplicate().actions == ()
    booted = EdgeControlState.at_boot(T0).on_duplicate()
    assert booted.actions == ()
    assert booted.state.on_reconnect_failed(at(9), RETRY_S, master_alive=True).actions == ()


def test_a_duplicate_refusal_while_linked_is_ignored() -> None:
    assert connected("edge", 4).on_duplicate().actions == ()


@pytest.mark.parametrize(
    ("now", "vouched", "due"),
    [
        (13.9, None, False),  # the master fails over at 20: yield 6 s before
        (14.0, None, True),
        (14.0, 5.0, False),  # its witness heard the edge run its devices at 5: 25 - 6
        (18.9, 5.0, False),
        (19.0, 5.0, True),
        (14.0, -30.0, True),  # a sign of life before the loss counts from the loss
    ],
)
def test_an_edge_yields_before_a_master_that_answers_fails_over(
    now: float, vouched: float | None, due: bool
) -> None:
    lost = connected().on_link_lost(at(0)).state
    assert (
        yield_due(
            at(now),
            unlinked_s=lost.unlinked_for(at(now)),
            vouched_at=at(vouched) if vouched is not None else None,
            timeout=20.0,
            margin=2 * RETRY_S,
        )
        == due
    )


def test_a_timeout_shorter_than_the_margin_yields_at_once() -> None:
    assert yield_due(at(0), unlinked_s=0.0, vouched_at=None, timeout=1.0, margin=6.0)


def test_an_edge_not_linked_since_its_boot_yields_at_once_unless_the_master_vouched() -> None:
    booted = EdgeControlState.at_boot(T0)
    unlinked = booted.unlinked_for(at(1))
    assert yield_due(at(1), unlinked_s=unlinked, vouched_at=None, timeout=20.0, margin=6.0)
    assert not yield_due(at(1), unlinked_s=unlinked, vouched_at=at(0.5), timeout=20.0, margin=6.0)


def test_a_refused_duplicate_starts_nothing_until_it_is_let_in() -> None:
    refused = EdgeControlState.at_boot(T0).on_duplicate().state
    # The master out of reach later: the process holding the link runs the devices.
    assert refused.on_reconnect_failed(at(60), RETRY_S, master_alive=False).actions == ()
    admitted = refused.on_link_up().state
    assert not admitted.duplicate
    assert admitted.on_control("edge", 3).actions == (StartLocalModules(),)
    lost = admitted.on_control("edge", 3).state.on_link_lost(at(61)).state
    assert not lost.duplicate
