from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.control.state import ControlState, EdgePolicy, SupervisorState

NOW = datetime(2024, 6, 5, 12, tzinfo=UTC)
POLICY = EdgePolicy(failover=True, timeout=20, window=None)


def test_a_policy_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        EdgePolicy(failover=True, timeout=0, window=None)


def test_an_edge_never_decided_about_has_no_controller() -> None:
    control = ControlState.unknown(NOW)
    assert (control.controller, control.epoch, control.online) == ("none", 0, False)
    assert control.since == NOW
    assert control.reason


def test_a_booting_master_starts_from_nothing_without_a_persisted_state() -> None:
    state = SupervisorState.at_master_boot(None, POLICY, NOW)
    assert state == SupervisorState(ControlState.unknown(NOW), POLICY)


def test_a_booting_master_keeps_the_decision_but_not_the_link_or_timer() -> None:
    persisted = replace(
        ControlState.unknown(NOW),
        controller="master",
        epoch=7,
        online=True,
        failover_active=True,
        failover_time=NOW,
        failover_deadline=NOW + timedelta(seconds=5),
        offline_since=NOW,
        reason="the edge stayed disconnected",
    )
    control = SupervisorState.at_master_boot(persisted, POLICY, NOW + timedelta(hours=1)).control
    assert (control.controller, control.epoch, control.failover_active) == ("master", 7, True)
    assert (control.failover_time, control.reason) == (NOW, "the edge stayed disconnected")
    assert (control.online, control.failover_deadline, control.offline_since) == (False, None, None)
