"""Discovery's ranking: the server that serves a system now first, then those that can take over."""

from __future__ import annotations

from typing import Any

from app.services.discovery import Knowledge, SystemServers, rank

MASTER = "https://master.example"
EDGE = "https://edge.example"


def control(controller: str, **fields: Any) -> dict[str, Any]:
    return {"controller": controller, "epoch": 4, "online": True, "reason": "why", **fields}


def ranked(here: str, here_runs: bool, described: dict[str, Any], **known: Any) -> SystemServers:
    return rank(
        "sys-1",
        "Lobby",
        "edge-1",
        Knowledge(here, here_runs, MASTER, EDGE, described, failover=True, **known),
    )


def order(answer: SystemServers) -> list[tuple[str, str, bool]]:
    return [(s.node, s.url, s.controls) for s in answer.servers]


def test_the_master_s_own_rooms_are_served_by_the_master_alone() -> None:
    answer = rank("sys-1", "Hall", None, Knowledge("edge:edge-1", False, MASTER))
    assert (answer.controller, answer.epoch, answer.location) == ("master", 0, None)
    assert order(answer) == [("master", MASTER, True)]
    assert answer.answered_by == "edge:edge-1"


def test_the_controller_comes_first_whoever_answers() -> None:
    edge_first = [("edge:edge-1", EDGE, True), ("master", MASTER, False)]
    assert order(ranked("master", False, control("edge"))) == edge_first
    assert order(ranked("edge:edge-1", True, control("edge"))) == edge_first
    master_first = [("master", MASTER, True), ("edge:edge-1", EDGE, False)]
    assert order(ranked("master", True, control("master"))) == master_first
    assert order(ranked("edge:edge-1", False, control("master"))) == master_first
    answer = ranked("master", False, control("edge"))
    assert (answer.epoch, answer.online, answer.failover, answer.reason) == (4, True, True, "why")


def test_a_server_trusts_itself_about_itself() -> None:
    # An edge cut off from the master runs its devices: its stale replica says master.
    cut_off = ranked("edge:edge-1", True, control("master", online=False))
    assert cut_off.controller == "edge"
    assert order(cut_off)[0] == ("edge:edge-1", EDGE, True)
    # Named controller, but not running (yet): a handover is under way.
    assert ranked("master", False, control("master")).controller == "none"
    assert ranked("edge:edge-1", False, control("edge")).controller == "none"
    # Another edge's room, answered by this edge: its replica's word.
    assert ranked("edge:other", False, control("edge")).controller == "edge"


def test_a_pending_failover_is_counted_down() -> None:
    answer = ranked("master", False, control("edge", online=False, retry_after=7.5))
    assert (answer.controller, answer.online, answer.failover_in) == ("edge", False, 7.5)
    assert order(answer)[0][0] == "edge:edge-1"


def test_an_edge_without_a_public_url_is_reached_through_the_master() -> None:
    answer = rank(
        "sys-1", "Lobby", "edge-1", Knowledge("master", False, MASTER, None, control("edge"))
    )
    assert order(answer) == [("master", MASTER, False)]
