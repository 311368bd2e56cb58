"""Restore windows: the times at which the master hands an edge's devices back.

A window opens at every time its 5-field CRON expression matches, in the edge's IANA
time zone, and stays open for ``window_length`` seconds of elapsed time (a window that
spans a DST change still lasts that long). APScheduler 3's crontab parser does the
matching, with two corrections so the expression means what it means to cron:

* day of week: crontab counts 0 (and 7) as Sunday, APScheduler 3 counts 0 as Monday;
  numbers are rewritten as weekday names, which mean the same to both;
* when both day of month and day of week are restricted, cron fires on either
  (``0 2 1 * mon``: the 1st and every Monday), APScheduler on both; such an expression
  becomes two triggers joined by an :class:`OrTrigger`.

All results are UTC datetimes; :func:`~app.control.clock.as_utc` explains why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from app.control.clock import as_utc

_CRONTAB_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_NUMBERS = {
    **{str(number): number for number in range(8)},
    **{name: number for number, name in enumerate(_CRONTAB_WEEKDAYS)},
}
#: Smallest step in time: "strictly after t" is "at or after t + _TICK".
_TICK = timedelta(microseconds=1)
#: Longer than any forward jump of a civil clock (DST moves it by one hour at most).
_LONGEST_CLOCK_JUMP = timedelta(hours=3)
#: A fixed origin for asking whether an expression ever matches: the calendar repeats
#: every 400 years and the parser looks ahead to year 9999, so one that matches at
#: all matches after it.
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class WindowSpan:
    """One opening of a restore window: open from ``start`` (inclusive) to ``end``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class RestoreWindow:
    """An edge's restore window, from its ``window_start``, ``window_length`` and ``timezone``.

    Raises ValueError when the expression, the length or the time zone is invalid.
    """

    window_start: str
    window_length: float
    timezone: str = "UTC"
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    trigger: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.window_length <= 0:
            raise ValueError(f"window_length must be positive, not {self.window_length:g}")
        object.__setattr__(self, "zone", _zone(self.timezone))
        object.__setattr__(self, "trigger", crontab_trigger(self.window_start, self.timezone))

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=self.window_length)

    def next_start(self, after: datetime) -> datetime | None:
        """The first opening strictly after ``after``; None if the expression never matches."""
        return self._start_at_or_after(as_utc(after) + _TICK)

    def contains(self, moment: datetime) -> bool:
        """Whether a window is open at ``moment``."""
        return self.current(moment) is not None

    def current(self, moment: datetime) -> WindowSpan | None:
        """The window open at ``moment``: the one that opened most recently, if still open.

        A window is open at ``moment`` when it opened in ``(moment - length, moment]``.
        The first opening in that interval is found directly. When windows are longer
        than the gap between openings, later ones may also fall in the interval; the
        latest is found by a binary search on whole seconds, which is exact because
        openings fall on whole seconds and the first opening at or after ``t`` never
        moves backwards as ``t`` grows (every instant is in UTC, and starts in an hour
        skipped by DST are found too: see :meth:`_start_at_or_after`). That takes a few
        dozen parser calls even for week-long windows.
        """
        moment = as_utc(moment)
        first = self._start_at_or_after(moment - self.length + _TICK)
        if first is None or first > moment:
            return None
        return self._span(self._latest_start(first, moment))

    def current_or_next(self, now: datetime) -> WindowSpan | None:
        """The window open now, else the next one (None if the expression never matches)."""
        current = self.current(now)
        if current is not None:
            return current
        start = self.next_start(now)
        return None if start is None else self._span(start)

    def _latest_start(self, first: datetime, moment: datetime) -> datetime:
        """The last opening in ``[first, moment]``, given that ``first`` is an opening."""
        low, high = 0, int((moment - first).total_seconds())
        while low < high:
            middle = (low + high + 1) // 2
            start = self._start_at_or_after(first + timedelta(seconds=middle))
            if start is not None and start <= moment:
                low = middle
            else:
                high = middle - 1
        return first + timedelta(seconds=low)

    def _start_at_or_after(self, moment: datetime) -> datetime | None:
        """The first opening at or after ``moment``, as a running scheduler fires them.

        A start that falls in the hour skipped by a DST change opens right after the
        gap, but APScheduler only finds it when asked from before the gap. So when the
        clock jumped forward shortly before ``moment``, the search starts before the
        jump and walks from opening to opening, as the scheduler does.
        """
        earlier = moment - _LONGEST_CLOCK_JUMP
        if not self._clock_jumped_forward(earlier, moment):
            return self._fire_time(moment)
        start = self._fire_time(earlier)
        while start is not None and start < moment:
            start = self._fire_time(start + _TICK)
        return start

    def _fire_time(self, moment: datetime) -> datetime | None:
        start: datetime | None = self.trigger.get_next_fire_time(None, moment)
        return None if start is None else start.astimezone(UTC)

    def _clock_jumped_forward(self, start: datetime, end: datetime) -> bool:
        """Whether the local clock ran ahead of real time from ``start`` to ``end``."""
        return self._local_clock(end) - self._local_clock(start) > end - start

    def _local_clock(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _span(self, start: datetime) -> WindowSpan:
        return WindowSpan(start=start, end=start + self.length)


def crontab_trigger(expression: str, timezone: str = "UTC") -> Any:
    """An APScheduler trigger that fires when the crontab ``expression`` matches.

    Usable both for computing openings and for scheduling the job that opens them.
    Raises ValueError with the reason when the expression or the time zone is invalid.
    """
    zone = _zone(timezone)
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"a CRON expression has 5 fields (minute hour day month weekday), not {len(fields)}"
        )
    minute, hour, day, month, weekday = fields

    def trigger(day: str, weekday: str) -> Any:
        crontab = f"{minute} {hour} {day} {month} {_weekday_names(weekday)}"
        return CronTrigger.from_crontab(crontab, timezone=zone)

    if day.startswith("*") or weekday.startswith("*"):
        return trigger(day, weekday)
    return OrTrigger([trigger(day, "*"), trigger("*", weekday)])


def validate_cron(expression: str) -> str | None:
    """Why ``expression`` is not a usable 5-field CRON expression, or None when it is."""
    try:
        trigger = crontab_trigger(expression)
    except ValueError as error:
        return str(error)
    if trigger.get_next_fire_time(None, _ORIGIN) is None:
        return f"{expression!r} never matches a date"
    return None


def validate_timezone(name: str) -> str | None:
    """Why ``name`` is not a known IANA time zone, or None when it is."""
    try:
        _zone(name)
    except ValueError as error:
        return str(error)
    return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as error:  # KeyError: ZoneInfoNotFoundError
        raise ValueError(f"unknown time zone {name!r}") from error


def _weekday_names(weekdays: str) -> str:
    """A crontab day-of-week field (0 or 7 is Sunday) rewritten as a list of weekday names."""
    if weekdays == "*":
        return weekdays
    days: set[int] = set()
    for part in weekdays.split(","):
        span, slash, step_text = part.partition("/")
        step = _step(step_text, part) if slash else 1
        if span == "*":
            first, last = 0, 6
        else:
            first_text, dash, last_text = span.partition("-")
            first = _weekday_number(first_text)
            last = _weekday_number(last_text) if dash else (6 if slash else first)
        if first > last:
            raise ValueError(f"day of week range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRONTAB_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    try:
        return _WEEKDAY_NUMBERS[text.lower()]
    except KeyError:
        raise ValueError(f"day of week {text!r} is not 0-7 or sun-sat") from None


def _step(text: str, part: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise ValueError(f"day of week step in {part!r} must be a positive whole number")
    return int(text)
