"""Summaries of measurements: percentiles, rates and straight-line fits (pure)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted samples lie (linear interpolation)."""
    if not ordered:
        raise ValueError("no samples")
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """Round-trip times in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(s * 1000 for s in seconds)
        return cls(
            n=len(ordered),
            p50=percentile(ordered, 0.5),
            p90=percentile(ordered, 0.9),
            p99=percentile(ordered, 0.99),
            mean=statistics.fmean(ordered),
            min=ordered[0],
            max=ordered[-1],
        )

    def as_json(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class LineFit:
    """``y = slope * x + intercept`` by least squares, with R²."""

    slope: float
    intercept: float
    r2: float

    @classmethod
    def of(cls, xs: Sequence[float], ys: Sequence[float]) -> LineFit:
        if len(xs) != len(ys) or len(xs) < 2:
            raise ValueError("a fit needs at least two (x, y) pairs")
        slope, intercept = statistics.linear_regression(xs, ys)
        mean = statistics.fmean(ys)
        total = sum((y - mean) ** 2 for y in ys)
        residual = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
        return cls(slope, intercept, 1.0 if total == 0 else 1 - residual / total)


def marginal_costs(points: Sequence[tuple[float, float]]) -> list[float]:
    """The cost of one more unit between consecutive ``(x, y)`` points, in order of x."""
    ordered = sorted(points)
    return [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in itertools.pairwise(ordered)]
