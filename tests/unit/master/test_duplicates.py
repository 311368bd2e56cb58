"""One process per edge: who is a duplicate, and what the master remembers of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.master.duplicates import MAX_CLOSE_REASON, Duplicates, Holder, is_duplicate

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)
HOLD_S = 6.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


FIRST = Holder("aaaa", "10.0.0.7", T0)


def test_another_instance_is_a_duplicate_the_same_or_an_unknown_one_is_not() -> None:
    assert is_duplicate(FIRST, "bbbb")
    assert not is_duplicate(FIRST, "aaaa"), "the same process reconnecting replaces its link"
    assert not is_duplicate(None, "bbbb"), "nobody holds the link"
    assert not is_duplicate(FIRST, None), "an edge too old to say"
    assert not is_duplicate(Holder(None, "10.0.0.7", T0), "bbbb")


def test_only_the_first_refusal_of_a_process_begins_an_episode() -> None:
    duplicates = Duplicates(hold_s=HOLD_S)
    first = [duplicates.refused("edge-1", "bbbb", "10.0.0.8", FIRST, at(s))[1] for s in range(30)]
    assert first == [True] + [False] * 29
    episode = duplicates.current("edge-1", at(30))
    assert episode is not None
    assert (episode.refusals, episode.first_at, episode.last_at) == (30, at(0), at(29))
    assert episode.as_json()["linked_instance"] == "aaaa"
    # Another process, or the same against another holder, is a new episode.
    assert duplicates.refused("edge-1", "cccc", "10.0.0.9", FIRST, at(31))[1]
    second = Holder("dddd", "10.0.0.7", at(32))
    assert duplicates.refused("edge-1", "cccc", "10.0.0.9", second, at(33))[1]


def test_an_episode_ends_once_the_duplicate_stops_trying() -> None:
    duplicates = Duplicates(hold_s=HOLD_S, quiet_s=60)
    duplicates.refused("edge-1", "bbbb", "10.0.0.8", FIRST, at(0))
    assert duplicates.current("edge-1", at(59)) is not None
    assert duplicates.current("edge-1", at(60)) is None
    assert duplicates.refused("edge-1", "bbbb", "10.0.0.8", FIRST, at(61))[1], "a new episode"


def test_the_holder_keeps_its_place_for_a_while_after_its_link_ends() -> None:
    duplicates = Duplicates(hold_s=HOLD_S)
    assert duplicates.held("edge-1", at(0)) is None, "no duplicate: nothing is held"
    duplicates.refused("edge-1", "bbbb", "10.0.0.8", FIRST, at(0))
    duplicates.released("edge-1", FIRST, at(10))
    assert duplicates.held("edge-1", at(15.9)) is FIRST
    assert duplicates.held("edge-1", at(16)) is None, "found gone: anyone may link now"


def test_the_holder_back_keeps_the_episode_and_another_process_ends_it() -> None:
    duplicates = Duplicates(hold_s=HOLD_S)
    duplicates.refused("edge-1", "bbbb", "10.0.0.8", FIRST, at(0))
    duplicates.released("edge-1", FIRST, at(1))
    back = Holder("aaaa", "10.0.0.7", at(2))
    duplicates.admitted("edge-1", back)
    episode = duplicates.current("edge-1", at(3))
    assert episode is not None and episode.holder is back and episode.holder_gone_at is None
    duplicates.admitted("edge-1", Holder("bbbb", "10.0.0.8", at(20)))
    assert duplicates.current("edge-1", at(21)) is None


def test_the_close_reason_says_duplicate_and_fits_a_close_frame() -> None:
    duplicates = Duplicates(hold_s=HOLD_S)
    holder = Holder("a" * 64, "x" * 200, T0)
    episode, _ = duplicates.refused("edge-1", "b" * 64, "10.0.0.8", holder, at(0))
    reason = episode.reason()
    assert reason.startswith("duplicate: ")
    assert len(reason.encode()) <= MAX_CLOSE_REASON
