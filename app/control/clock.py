"""Instants for the control rules: timezone-aware, compared and added in UTC.

Python compares and subtracts two datetimes that share a ``ZoneInfo`` by their wall
clock, ignoring ``fold``, which is wrong in the repeated hour of a DST change; adding
a ``timedelta`` to a local time adds wall-clock time, not elapsed time. Turning every
instant into UTC at the boundary makes both exact.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused because it names no instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC)


def now_utc() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)
