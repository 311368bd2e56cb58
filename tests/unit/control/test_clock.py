from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.control.clock import as_utc


def test_the_same_instant_comes_back_in_utc() -> None:
    local = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    assert as_utc(local) == datetime(2024, 11, 3, 6, 30, tzinfo=UTC)
    assert as_utc(local).tzinfo is UTC


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        as_utc(datetime(2024, 1, 1))
