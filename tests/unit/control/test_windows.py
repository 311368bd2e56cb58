from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.control.windows import (
    RestoreWindow,
    WindowSpan,
    crontab_trigger,
    validate_cron,
    validate_timezone,
)

MONDAY = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday, 00:00 UTC


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def openings(window: RestoreWindow, after: datetime, count: int) -> list[datetime]:
    found: list[datetime] = []
    moment = after
    for _ in range(count):
        start = window.next_start(moment)
        assert start is not None
        found.append(start)
        moment = start
    return found


def scheduled(window: RestoreWindow, after: datetime, count: int) -> list[datetime]:
    """The openings a running scheduler fires: each asked from the previous one."""
    found: list[datetime] = []
    fire = window.trigger.get_next_fire_time(None, after)
    for _ in range(count):
        found.append(fire.astimezone(UTC))
        fire = window.trigger.get_next_fire_time(fire, fire)
    return found


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression", ["0 2 * * *", "*/15 1-3 * * mon-fri", "0 0 1 * 1", "30 22 * 12 7", "0 0 29 2 *"]
)
def test_valid_expressions_pass(expression: str) -> None:
    assert validate_cron(expression) is None


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * *", "5 fields"),
        ("0 0 2 * * *", "5 fields"),
        ("", "5 fields"),
        ("61 * * * *", "higher than the maximum"),
        ("0 24 * * *", "higher than the maximum"),
        ("0 0 * foo *", "foo"),
        ("0 0 * * 8", "'8' is not 0-7"),
        ("0 0 * * funday", "'funday' is not 0-7"),
        ("0 0 * * 5-1", "runs backwards"),
        ("0 0 * * */0", "positive whole number"),
        ("0 0 * * 1,,2", "'' is not 0-7"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_invalid_expressions_say_why(expression: str, words: str) -> None:
    problem = validate_cron(expression)
    assert problem is not None
    assert words in problem


def test_a_window_refuses_a_bad_expression_length_or_zone() -> None:
    with pytest.raises(ValueError, match="5 fields"):
        RestoreWindow("0 2 * *", 3600)
    with pytest.raises(ValueError, match="must be positive"):
        RestoreWindow("0 2 * * *", 0)
    with pytest.raises(ValueError, match="unknown time zone"):
        RestoreWindow("0 2 * * *", 3600, "Mars/Olympus_Mons")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("UTC", True),
        ("Australia/Sydney", True),
        ("Mars/Base", False),
        ("../etc", False),
        ("", False),
    ],
)
def test_time_zones(name: str, valid: bool) -> None:
    assert (validate_timezone(name) is None) == valid


def test_windows_are_equal_by_their_settings() -> None:
    assert RestoreWindow("0 2 * * *", 60, "UTC") == RestoreWindow("0 2 * * *", 60, "UTC")
    assert RestoreWindow("0 2 * * *", 60, "UTC") != RestoreWindow("0 3 * * *", 60, "UTC")


# --- the meaning of the expression --------------------------------------------------


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [
        ("0", {"Sunday"}),
        ("7", {"Sunday"}),
        ("1", {"Monday"}),
        ("1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("5-7", {"Friday", "Saturday", "Sunday"}),
        ("*/2", {"Sunday", "Tuesday", "Thursday", "Saturday"}),
        ("1/3", {"Monday", "Thursday"}),
        ("sun,Wed", {"Sunday", "Wednesday"}),
        ("mon-fri/2", {"Monday", "Wednesday", "Friday"}),
        ("*", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}),
    ],
)
def test_days_of_week_count_from_sunday_as_in_crontab(weekdays: str, expected: set[str]) -> None:
    window = RestoreWindow(f"0 12 * * {weekdays}", 60)
    assert {start.strftime("%A") for start in openings(window, MONDAY, 14)} == expected


def test_restricted_day_of_month_and_day_of_week_match_either_as_in_crontab() -> None:
    window = RestoreWindow("0 0 1 * 1", 60)  # the 1st of the month, and every Monday
    starts = openings(window, utc(2024, 6, 25), 3)
    assert starts == [utc(2024, 7, 1), utc(2024, 7, 8), utc(2024, 7, 15)]
    assert openings(window, utc(2024, 7, 29), 2) == [utc(2024, 8, 1), utc(2024, 8, 5)]


def test_a_day_field_starting_with_a_star_restricts_with_the_other() -> None:
    window = RestoreWindow("0 0 */2 * 1", 60)  # Mondays that fall on odd days
    assert openings(window, utc(2024, 6, 1), 3) == [
        utc(2024, 6, 3),
        utc(2024, 6, 17),
        utc(2024, 7, 1),
    ]


def test_the_trigger_schedules_the_same_openings() -> None:
    window = RestoreWindow("0 0 1 * 1", 60, "Europe/Berlin")
    fire = window.trigger.get_next_fire_time(None, utc(2024, 7, 2))
    assert fire == window.next_start(utc(2024, 7, 2))
    assert crontab_trigger("0 0 1 * 1", "Europe/Berlin").get_next_fire_time(None, utc(2024, 7, 2))


def test_openings_follow_the_edge_time_zone() -> None:
    window = RestoreWindow("0 2 * * *", 3600, "Australia/Sydney")  # AEST is UTC+10 in June
    start = window.next_start(utc(2024, 6, 5))
    assert start == utc(2024, 6, 5, 16)
    assert start is not None
    assert start.tzinfo is UTC


# --- next_start, contains, current_or_next ------------------------------------------


def test_next_start_is_strictly_after() -> None:
    window = RestoreWindow("0 2 * * *", 3600)
    assert window.next_start(utc(2024, 6, 5, 1, 59)) == utc(2024, 6, 5, 2)
    assert window.next_start(utc(2024, 6, 5, 2)) == utc(2024, 6, 6, 2)


def test_next_start_of_an_expression_that_never_matches_is_none() -> None:
    window = RestoreWindow("0 0 31 2 *", 3600)
    assert window.next_start(MONDAY) is None
    assert window.current_or_next(MONDAY) is None
    assert not window.contains(MONDAY)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (utc(2024, 6, 5, 1, 59, 59), False),
        (utc(2024, 6, 5, 2), True),
        (utc(2024, 6, 5, 2, 59, 59), True),
        (utc(2024, 6, 5, 3), False),
        (utc(2024, 6, 5, 12), False),
    ],
)
def test_a_window_is_open_from_its_start_until_just_before_its_end(
    moment: datetime, inside: bool
) -> None:
    assert RestoreWindow("0 2 * * *", 3600).contains(moment) == inside


def test_current_or_next_gives_the_open_window_else_the_next() -> None:
    window = RestoreWindow("0 2 * * *", 3600)
    open_now = WindowSpan(utc(2024, 6, 5, 2), utc(2024, 6, 5, 3))
    assert window.current_or_next(utc(2024, 6, 5, 2, 30)) == open_now
    assert window.current(utc(2024, 6, 5, 2, 30)) == open_now
    assert window.current_or_next(utc(2024, 6, 5, 3)) == WindowSpan(
        utc(2024, 6, 6, 2), utc(2024, 6, 6, 3)
    )
    assert window.current(utc(2024, 6, 5, 3)) is None


def test_with_windows_longer_than_the_gap_the_latest_opening_is_current() -> None:
    window = RestoreWindow("0 * * * *", 2 * 3600)  # hourly, two hours long
    span = window.current(utc(2024, 6, 5, 10, 20))
    assert span == WindowSpan(utc(2024, 6, 5, 10), utc(2024, 6, 5, 12))


def test_a_week_long_window_opening_every_minute_is_found_exactly() -> None:
    window = RestoreWindow("* * * * *", 7 * 86400)
    assert window.current(utc(2024, 6, 5, 10, 20, 30)) == WindowSpan(
        utc(2024, 6, 5, 10, 20), utc(2024, 6, 12, 10, 20)
    )


@pytest.mark.parametrize("call", ["next_start", "contains", "current", "current_or_next"])
def test_naive_datetimes_are_refused(call: str) -> None:
    window = RestoreWindow("0 2 * * *", 3600)
    with pytest.raises(ValueError, match="no time zone"):
        getattr(window, call)(datetime(2024, 6, 5, 2, 30))


def test_any_aware_datetime_is_accepted() -> None:
    window = RestoreWindow("0 2 * * *", 3600)
    assert window.contains(datetime(2024, 6, 5, 12, 30, tzinfo=ZoneInfo("Australia/Sydney")))


# --- daylight saving ----------------------------------------------------------------


def test_the_length_is_elapsed_time_across_spring_forward() -> None:
    # Berlin, 2024-03-31: 02:00 CET becomes 03:00 CEST.
    window = RestoreWindow("0 1 * * *", 3 * 3600, "Europe/Berlin")
    span = window.current(utc(2024, 3, 31, 2))
    assert span == WindowSpan(utc(2024, 3, 31, 0), utc(2024, 3, 31, 3))
    assert window.contains(utc(2024, 3, 31, 2, 59))
    assert not window.contains(utc(2024, 3, 31, 3))


def test_a_start_in_the_skipped_hour_opens_just_after_the_gap() -> None:
    # Berlin, 2024-03-31: 02:30 does not exist; the window opens at 03:30 CEST.
    window = RestoreWindow("30 2 * * *", 1800, "Europe/Berlin")
    assert window.next_start(utc(2024, 3, 30, 12)) == utc(2024, 3, 31, 1, 30)
    assert window.next_start(utc(2024, 3, 31, 1, 5)) == utc(2024, 3, 31, 1, 30)  # 03:05 CEST
    assert window.current(utc(2024, 3, 31, 1, 45)) == WindowSpan(
        utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2)
    )


def test_a_start_in_the_repeated_hour_opens_at_both_occurrences() -> None:
    # New York, 2024-11-03: 01:00-02:00 happens twice (EDT, then EST).
    window = RestoreWindow("30 1 * * *", 1800, "America/New_York")
    assert openings(window, utc(2024, 11, 3), 3) == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 3, 6, 30),
        utc(2024, 11, 4, 6, 30),
    ]
    assert window.contains(utc(2024, 11, 3, 5, 45))
    assert not window.contains(utc(2024, 11, 3, 6, 10))  # between the two 01:30s
    assert window.current(utc(2024, 11, 3, 6, 45)) == WindowSpan(
        utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7)
    )


def test_a_local_moment_in_the_repeated_hour_is_compared_as_an_instant() -> None:
    zone = ZoneInfo("America/New_York")
    window = RestoreWindow("30 1 * * *", 1800, "America/New_York")
    second_0145 = datetime(2024, 11, 3, 1, 45, fold=1, tzinfo=zone)  # 06:45 UTC
    assert window.current(second_0145) == WindowSpan(utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7))


@pytest.mark.parametrize(
    ("expression", "length", "zone", "around"),
    [
        ("0 * * * *", 2 * 3600 + 600, "UTC", utc(2024, 6, 5)),
        ("*/20 1-3 * * *", 3000, "America/New_York", utc(2024, 11, 3, 4)),
        ("15 2 * * *", 5400, "Europe/Berlin", utc(2024, 3, 30, 22)),
        ("0 0,12 * * 0,3", 13 * 3600, "Australia/Sydney", utc(2024, 4, 6)),
    ],
)
def test_current_agrees_with_scanning_every_opening(
    expression: str, length: float, zone: str, around: datetime
) -> None:
    window = RestoreWindow(expression, length, zone)
    starts = scheduled(window, around - timedelta(days=2), 200)
    moment = around
    while moment < around + timedelta(days=1):
        latest = max((start for start in starts if start <= moment), default=None)
        expected = latest if latest is not None and moment < latest + window.length else None
        span = window.current(moment)
        assert (span.start if span else None) == expected, moment
        moment += timedelta(minutes=7)
