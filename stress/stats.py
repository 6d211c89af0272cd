"""The kit's statistics, in one place: throughput, the median run, spreads and intervals.

One convention each, so `run`, `bench`, `ab` and the studies under `ci/` give the same number
for the same figures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def throughput(tokens: float, seconds: float) -> float:
    """Tokens per second; 0 for a run that measured no time (nothing ran)."""
    return float(tokens) / seconds if seconds > 0 else 0.0


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def median_index(values: Sequence[float]) -> int:
    """The index of the value a median run is: the lower middle one for an even count.

    A run is one of the measured runs, never an average of two, so an even count takes the
    lower of its two middle runs (the conservative one for a throughput).
    """
    if not values:
        raise ValueError("median of no values")
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie, by linear interpolation."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is outside 0..1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: order statistics of the binomial(n, 1/2).

    The widest pair of order statistics whose coverage is at least ``confidence``; with too few
    values for that coverage, the full range.
    """
    if not values:
        raise ValueError("interval of no values")
    ordered = sorted(values)
    n = len(ordered)
    # Coverage of [x_(k), x_(n-k+1)] is 1 - 2 * P(Binomial(n, 1/2) < k).
    best = (ordered[0], ordered[-1])
    tail = 0.0
    for k in range(1, n // 2 + 1):
        tail += math.comb(n, k - 1) / 2**n
        if 1 - 2 * tail < confidence:
            break
        best = (ordered[k - 1], ordered[n - k])
    return best


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The smallest and largest value."""
    if not values:
        raise ValueError("spread of no values")
    return min(values), max(values)


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The slope of the least-squares line through the points; None for fewer than two
    distinct ``xs`` (no line to fit)."""
    if len(xs) != len(ys):
        raise ValueError("slope of unequal sequences")
    n = len(xs)
    if n < 2:
        return None
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    spread_x = sum((x - mean_x) ** 2 for x in xs)
    if spread_x == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread_x
