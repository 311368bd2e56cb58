"""When the master takes an edge for deaf to its witness (and yields to it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from app.master.witnesses import WitnessAsker
from app.services.witness import WitnessReport, WitnessResult

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)
INTERVAL_S, TIMEOUT_S = 1.0, 2.0
GRACE_S = 2 * (INTERVAL_S + TIMEOUT_S)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def asker(clock: Clock) -> WitnessAsker:
    unused = cast(Any, None)
    return WitnessAsker(
        unused, unused, unused, unused, interval_s=INTERVAL_S, timeout_s=TIMEOUT_S, clock=clock
    )


def said(seconds: float, result: WitnessResult = "controls") -> WitnessReport:
    return WitnessReport(T0 + timedelta(seconds=seconds), result, None, None)


def test_an_edge_that_keeps_claiming_without_asking_is_deaf_after_the_grace() -> None:
    witnesses = asker(Clock())
    assert [witnesses.deaf("edge-1", said(s)) for s in (0, 1, 5.9, GRACE_S)] == [
        False,
        False,
        False,
        True,
    ]


def test_an_edge_that_asked_since_its_claims_began_hears_the_master() -> None:
    clock = Clock()
    witnesses = asker(clock)
    witnesses.edge_asked("edge-1")  # before the claims: it may have missed the takeover
    assert not witnesses.deaf("edge-1", said(0.5))
    clock.now = T0 + timedelta(seconds=1)
    witnesses.edge_asked("edge-1")  # since: it heard that the master runs the devices
    assert not witnesses.deaf("edge-1", said(GRACE_S + 1))


def test_any_other_answer_starts_the_claims_afresh() -> None:
    witnesses = asker(Clock())
    witnesses.deaf("edge-1", said(0))
    assert not witnesses.deaf("edge-1", said(3, "unreachable"))
    assert not witnesses.deaf("edge-1", said(4))
    assert not witnesses.deaf("edge-1", said(4 + GRACE_S - 0.1))
    assert witnesses.deaf("edge-1", said(4 + GRACE_S))
