"""Delays between reconnection attempts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff, capped at ``maximum``, with proportional jitter.

    The jitter spreads the retries of clients that lost their device at the same
    moment (a power cut, a switch reboot) so they do not all retry in lockstep.
    """

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("Backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("Backoff factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("Backoff jitter must be in [0, 1)")

    def delays(self) -> Iterator[float]:
        """Yield the wait before each successive attempt, forever."""
        base = self.initial
        while True:
            spread = random.uniform(-self.jitter, self.jitter)
            yield min(base * (1 + spread), self.maximum)
            base = min(base * self.factor, self.maximum)
