"""A fixed-bucket latency histogram kept by its owner and exported as a snapshot.

The owner calls ``observe`` once per operation (a store transaction, not a sample); /metrics
reads ``snapshot()``, so prometheus_client is not needed where the time is measured.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["STORE_WRITE_BUCKETS", "Histogram", "HistogramSnapshot"]

STORE_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a local SQLite commit takes about a millisecond, a PostgreSQL batch after an outage seconds."""


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]  # upper bounds (inclusive), ascending; +Inf is implied
    counts: tuple[int, ...]  # observations per bucket, len(bounds) + 1 (the last: above every bound)
    total: float  # sum of the observed values

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) per bucket, ending with (inf, count): Prometheus' ``le``."""
        out: list[tuple[float, int]] = []
        seen = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            out.append((bound, seen))
        return out


class Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly ascending")
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._total += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self._bounds, tuple(self._counts), self._total)
