from __future__ import annotations

from itertools import islice

import pytest

from app.runtime.transports import Backoff


def test_delays_grow_by_the_factor_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)

    assert list(islice(backoff.delays(), 7)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_jitter_stays_within_its_fraction_and_never_exceeds_the_maximum() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, factor=2.0, jitter=0.25)

    delays = list(islice(backoff.delays(), 500))

    assert all(0.75 <= delay <= 1.0 for delay in delays)
    assert min(delays) < 0.8, "jitter should spread the delays below the cap"


def test_jitter_applies_around_each_step() -> None:
    backoff = Backoff(initial=1.0, maximum=100.0, factor=10.0, jitter=0.1)

    first, second, third = islice(backoff.delays(), 3)

    assert 0.9 <= first <= 1.1
    assert 9.0 <= second <= 11.0
    assert 90.0 <= third <= 100.0


def test_each_call_starts_over() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, jitter=0.0)
    used = backoff.delays()
    list(islice(used, 3))

    assert next(backoff.delays()) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "arguments",
    [
        {"initial": 0.0},
        {"initial": 2.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.0},
    ],
)
def test_rejects_settings_that_cannot_back_off(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**arguments)
