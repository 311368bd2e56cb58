"""When the master takes an edge for deaf to its witness (and yields to it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from app.master.witnesses import MAX_BACKOFF, WitnessAsker
from app.models import WitnessResult
from app.services.witness import WitnessReport

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


class Held:
    """A supervisor whose edge's devices the master holds while the edge is offline."""

    def __init__(self, *, pending: bool = False) -> None:
        deadline = T0 + timedelta(seconds=20) if pending else None
        control = SimpleNamespace(online=False, controller="master", failover_deadline=deadline)
        self.state = SimpleNamespace(control=control)


class Edges:
    def __init__(self, **supervisors: Held) -> None:
        self.supervisors = supervisors

    def api_url(self, edge_id: str) -> str:
        return f"http://{edge_id}"

    def get(self, edge_id: str) -> None:
        return None


class Unanswered:
    async def ask(self, url: str, edge_id: str, secrets: Any, previous: Any) -> WitnessReport:
        return said(0, "unreachable")


class Secrets:
    async def valid(self, edge_id: str) -> list[str]:
        return ["secret"]


async def test_an_unanswering_edge_the_master_holds_is_asked_less_and_less() -> None:
    edges = Edges(dead=Held(), pending=Held(pending=True))
    witnesses = WitnessAsker(
        cast(Any, Unanswered()),
        cast(Any, Secrets()),
        cast(Any, edges),
        cast(Any, SimpleNamespace(link_errors={})),
        interval_s=INTERVAL_S,
        timeout_s=TIMEOUT_S,
    )
    asked: dict[str, list[int]] = {"dead": [], "pending": []}
    for tick in range(40):
        for edge_id, url in list(witnesses._waiting()):
            asked[edge_id].append(tick)
            witnesses._asked[edge_id] = witnesses._asked.get(edge_id, 0) + 1
            await witnesses._ask(edge_id, url, witnesses._asked[edge_id])
    assert asked["pending"] == list(range(40)), "a pending failover is asked every interval"
    gaps = [b - a for a, b in zip(asked["dead"], asked["dead"][1:], strict=False)]
    assert gaps[:4] == [2, 4, 8, 8] and set(gaps[3:]) == {MAX_BACKOFF}
