"""A log-bucketed latency histogram: bounded memory, about 3% precision, any number of values.

HdrHistogram's idea in a few lines: values (in microseconds) below ``2**SUB_BITS`` get a bucket
each; above that, each power of two is split into ``2**SUB_BITS`` equal buckets, so a bucket's
width is at most ``1 / 2**SUB_BITS`` of its value. A day in microseconds needs fewer than 1,000
buckets, so ten million tokens cost the same memory as ten.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SUB_BITS = 5  # 32 buckets per power of two: a bucket is at most ~3% of its value wide
_SUB = 1 << SUB_BITS


def bucket_of(value_us: int) -> int:
    """The bucket index of a non-negative integer value."""
    if value_us < _SUB:
        return value_us
    shift = value_us.bit_length() - SUB_BITS - 1
    return ((shift + 1) << SUB_BITS) + (value_us >> shift) - _SUB


def bucket_upper(index: int) -> int:
    """The largest value a bucket holds (what a percentile reports: never an underestimate)."""
    if index < _SUB:
        return index
    shift = (index >> SUB_BITS) - 1
    sub = (index & (_SUB - 1)) + _SUB
    return ((sub + 1) << shift) - 1


def _micros(value_s: float) -> int:
    return int(value_s * 1e6)


@dataclass(frozen=True, kw_only=True)
class LatencySummary:
    """What a histogram says, in milliseconds; ``None`` everywhere when nothing was recorded."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    buckets: tuple[tuple[float, int], ...] = ()  # (upper bound in ms, count), for plots


class Histogram:
    """Counts per bucket; ``record`` is O(1) and takes a weight for a run of equal values."""

    __slots__ = ("_counts", "count", "max_us")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.max_us = 0

    def record(self, value_s: float, weight: int = 1) -> None:
        value_us = max(0, _micros(value_s))
        index = bucket_of(value_us)
        self._counts[index] = self._counts.get(index, 0) + weight
        self.count += weight
        self.max_us = max(self.max_us, value_us)

    def record_many(self, values_s: Sequence[float], weights: Sequence[int]) -> None:
        """Record ``values_s[i]`` with weight ``weights[i]`` for every i, like ``record``.

        The verifier's per-run latencies come here in batches: sorted, each bucket's values
        are one slice, so the bucket arithmetic runs once per bucket, not once per value,
        and the rest is C (``sort``, ``map``, ``bisect``, ``sum``). A batch of equal weights
        (runs of one length: the usual case) sorts the seconds alone. Only the values a bucket
        search looks at are converted to microseconds: converting every value costs more than
        sorting.
        """
        n = len(values_s)
        if not n:
            return
        weight = weights[0]
        if weights.count(weight) == n:
            seconds = sorted(values_s)
            self._add_sorted(seconds, lambda i, j: weight * (j - i))
            self.count += weight * n
        else:
            order = sorted(range(n), key=values_s.__getitem__)
            seconds = list(map(values_s.__getitem__, order))
            ordered_weights = list(map(weights.__getitem__, order))
            self._add_sorted(seconds, lambda i, j: sum(ordered_weights[i:j]))
            self.count += sum(ordered_weights)
        self.max_us = max(self.max_us, _micros(seconds[-1]))

    def _add_sorted(self, seconds: Sequence[float], weight_of: Callable[[int, int], int]) -> None:
        """Add sorted values to their buckets; ``weight_of(i, j)`` is the weight of ``[i:j]``."""
        counts = self._counts
        i, n = 0, len(seconds)
        while i < n:
            index = bucket_of(max(0, _micros(seconds[i])))
            j = bisect.bisect_right(seconds, bucket_upper(index), i, key=_micros)
            counts[index] = counts.get(index, 0) + weight_of(i, j)
            i = j

    def merge(self, other: Histogram) -> None:
        for index, n in other._counts.items():
            self._counts[index] = self._counts.get(index, 0) + n
        self.count += other.count
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, fraction: float) -> int | None:
        """The smallest bucket bound with at least ``fraction`` of the values at or below it."""
        if self.count == 0:
            return None
        # round() first: 0.99 * 100 is 99.00000000000001 in floating point, not 99.
        wanted = max(1, math.ceil(round(fraction * self.count, 6)))
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= wanted:
                return min(bucket_upper(index), self.max_us)
        return self.max_us

    def summary(self) -> LatencySummary:
        def ms(value_us: int | None) -> float | None:
            return None if value_us is None else value_us / 1000

        return LatencySummary(
            count=self.count, p50_ms=ms(self.percentile_us(0.50)),
            p95_ms=ms(self.percentile_us(0.95)), p99_ms=ms(self.percentile_us(0.99)),
            max_ms=ms(self.max_us) if self.count else None,
            buckets=tuple((bucket_upper(i) / 1000, n) for i, n in sorted(self._counts.items())),
        )
