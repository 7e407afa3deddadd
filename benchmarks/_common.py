"""Shared pieces of the rules benchmarks: rules, synthetic data and the naive baseline."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse.rules.loader import load_rules_text
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample
from tests.rules.reference import Reference, _Stream

RULES_YAML = """
rules:
  - {id: hot, tag: "line*/m*/temp", above: 80, for: 3s, clear: {limit: 75, for: 1s}, severity: high}
  - {id: band, tag: "line*/m*/temp", outside: [10, 90], severity: medium}
  - {id: dev, tag: "line*/m*/temp", deviation: {setpoint: 50, limit: 35}, for: 2s, severity: low}
"""


def rules() -> list[Rule]:
    return load_rules_text(RULES_YAML, "bench.yaml")


def tag_names(n: int) -> list[str]:
    return [f"line{i // 1000}/m{i % 1000:03d}/temp" for i in range(n)]


class IndexedReference(Reference):
    """The tests' naive per-sample evaluator with a per-tag stream index, so the baseline
    measures per-sample evaluation rather than the test oracle's linear stream search."""

    def __init__(self, rule_list: list[Rule]) -> None:
        super().__init__(rule_list)
        self._by_tag: dict[str, list[tuple[_Stream, list[str]]]] = {}

    def _streams_reading(self, tag: str) -> list[tuple[_Stream, list[str]]]:
        hit = self._by_tag.get(tag)
        if hit is None:
            hit = self._by_tag[tag] = super()._streams_reading(tag)
        return hit

    def feed_untimed(self, s: Sample) -> None:
        """``feed`` without the per-sample watermark tick (the caller ticks per batch)."""
        tick = self.tick
        self.tick = _noop  # type: ignore[method-assign]
        try:
            self.feed(s)
        finally:
            self.tick = tick  # type: ignore[method-assign]


def _noop(_: int) -> None:
    return None


def naive_rate(rule_list: list[Rule], samples: list[Sample], tick_every: int) -> float:
    """Samples/s of the naive evaluator, the watermark ticking once per batch (``tick_every``);
    the first batch is a warm-up (stream creation), not timed."""
    ref = IndexedReference(rule_list)
    for s in samples[:tick_every]:
        ref.feed_untimed(s)
    rest = samples[tick_every:]
    t = time.perf_counter()
    for i, s in enumerate(rest):
        ref.feed_untimed(s)
        if (i + 1) % tick_every == 0:
            ref.tick(s.ts)
    return len(rest) / (time.perf_counter() - t)


def best_of(n: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(n))
