from __future__ import annotations

from itertools import product

import pytest

from app.control.negotiation import NegotiationInput, negotiate

# (devices loaded, inside window, master booting, master has control) -> winner
TABLE = [
    (False, False, False, False, "edge"),
    (False, False, False, True, "master"),
    (False, False, True, False, "edge"),
    (False, False, True, True, "edge"),
    (False, True, False, False, "edge"),
    (False, True, False, True, "edge"),
    (False, True, True, False, "edge"),
    (False, True, True, True, "edge"),
    (True, False, False, False, "edge"),
    (True, False, False, True, "edge"),
    (True, False, True, False, "edge"),
    (True, False, True, True, "edge"),
    (True, True, False, False, "edge"),
    (True, True, False, True, "edge"),
    (True, True, True, False, "edge"),
    (True, True, True, True, "edge"),
]
ALL_INPUTS = [NegotiationInput(*flags) for flags in product((False, True), repeat=4)]


def test_the_table_covers_every_combination() -> None:
    assert {NegotiationInput(*row[:4]) for row in TABLE} == set(ALL_INPUTS)


@pytest.mark.parametrize(("loaded", "window", "booting", "has_control", "winner"), TABLE)
def test_winner(loaded: bool, window: bool, booting: bool, has_control: bool, winner: str) -> None:
    decision = negotiate(NegotiationInput(loaded, window, booting, has_control))
    assert decision.controller == winner


@pytest.mark.parametrize("inp", ALL_INPUTS, ids=str)
def test_the_master_only_wins_control_if_it_already_has_control(inp: NegotiationInput) -> None:
    won = negotiate(inp).controller == "master"
    others_favour_edge = inp.edge_devices_loaded or inp.inside_restore_window or inp.master_booting
    assert won == (inp.master_has_control and not others_favour_edge)
    if won:
        assert inp.master_has_control


@pytest.mark.parametrize(
    ("inp", "words"),
    [
        (NegotiationInput(True, True, True, True), "already runs its devices"),
        (NegotiationInput(False, True, True, True), "restore window"),
        (NegotiationInput(False, False, True, True), "still booting"),
        (NegotiationInput(False, False, False, True), "already controls"),
        (NegotiationInput(False, False, False, False), "does not control"),
    ],
)
def test_the_first_rule_that_applies_gives_the_reason(inp: NegotiationInput, words: str) -> None:
    assert words in negotiate(inp).reason
