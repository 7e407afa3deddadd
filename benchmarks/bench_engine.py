"""Engine throughput at plant scale: N tags at 10 Hz in 100 ms batches (one sample per tag).

    .venv/bin/python benchmarks/bench_engine.py [--tags 1000 10000] [--seconds 20] [--repeat 3]

Two workloads over the same 3 glob rules (one stream per rule and tag):

* ``steady``: every tag noisy around its own level; 0.1 % of tags per second start a
  5 s excursion that crosses the limits (a plant on a normal day, a few alerts a second).
* ``churn``: every tag a random walk that keeps crossing the limits (about 1 000 alert
  events/s at 10k tags), where building the events themselves costs most.

For each it prints the engine's samples/s (best of ``--repeat`` runs, first batch excluded:
it creates the streams) and the naive per-sample evaluator of tests/rules/reference.py,
measured in the same run on a prefix of the same data, and their ratio.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from _common import IndexedReference, rules, tag_names

from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from tests.rules.reference import _Stream

NS = 1_000_000_000
Values = Callable[[int], "np.ndarray[tuple[int], np.dtype[np.float64]]"]


def steady(n_tags: int, rng: np.random.Generator) -> Values:
    level = rng.uniform(30, 60, n_tags)
    fault_until = np.full(n_tags, -1)

    def step(k: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
        start = rng.random(n_tags) < 0.001 / 10  # per 100 ms tick: 0.1 % of tags per second
        fault_until[start] = k + 50
        value = level + rng.normal(0, 1.0, n_tags)
        value[fault_until > k] += 45.0
        return value

    return step


def churn(n_tags: int, rng: np.random.Generator) -> Values:
    level = rng.uniform(20, 70, n_tags)

    def step(k: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
        level[:] += rng.normal(0, 1.5, n_tags)
        np.clip(level, 0, 100, out=level)
        return level.copy()

    return step


WORKLOADS = {"steady": steady, "churn": churn}


def make_batches(tags: TagRegistry, n_tags: int, seconds: float, workload: str) -> list[SampleBatch]:
    rng = np.random.default_rng(1)
    values = WORKLOADS[workload](n_tags, rng)
    ids = np.array([tags.id(n) for n in tag_names(n_tags)], dtype=np.int32)
    out = []
    for k in range(int(seconds * 10)):
        ts = np.full(n_tags, k * NS // 10, dtype=np.int64) + rng.integers(0, NS // 10, n_tags)
        value = values(k)
        value[rng.random(n_tags) < 0.001] = np.nan  # a few bad samples
        out.append(SampleBatch.make(tags, ts, ids.copy(), value))  # fresh arrays, as a collector sends
    return out


class BenchReference(IndexedReference):
    """The naive evaluator, creating the stream of a new tag directly (all bench rules read
    one tag); the reference's own lookup scans every stream per new tag, which makes the
    untimed warm-up quadratic at 10k tags. Per-sample evaluation is unchanged."""

    def _streams_reading(self, tag: str) -> list[tuple[_Stream, list[str]]]:
        hit = self._by_tag.get(tag)
        if hit is None:
            hit = self._by_tag[tag] = []
            for rule in self.rules:
                if rule.matches(tag):
                    st = self.streams.setdefault((rule.id, tag), _Stream(rule, tag))
                    hit.append((st, [tag]))
        return hit


def naive_rate(rule_list: list[Rule], batches: list[SampleBatch]) -> tuple[float, int]:
    """Samples/s of the naive evaluator, fed in time order, the watermark ticking per batch;
    ``batches[0]`` is the untimed warm-up (stream creation)."""
    assert all(r.inputs == () for r in rule_list)
    ref = BenchReference(rule_list)
    for s in sorted(batches[0].samples(), key=_ts):
        ref.feed_untimed(s)
    rows = [sorted(b.samples(), key=_ts) for b in batches[1:]]
    n = sum(len(r) for r in rows)
    t = time.perf_counter()
    for r in rows:
        for s in r:
            ref.feed_untimed(s)
        ref.tick(r[-1].ts)
    return n / (time.perf_counter() - t), n


def _ts(s: Sample) -> int:
    return s.ts


def engine_rate(rule_list: list[Rule], tags: TagRegistry, batches: list[SampleBatch]) -> tuple[float, int]:
    eng = Engine(rule_list, tags)
    events = len(eng.process(batches[0]))  # stream creation and first-batch work, not steady state
    t = time.perf_counter()
    for b in batches[1:]:
        events += len(eng.process(b))
    dt = time.perf_counter() - t
    return sum(len(b) for b in batches[1:]) / dt, events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    args = ap.parse_args()
    rule_list = rules()
    workloads = list(WORKLOADS) if args.workload == "both" else [args.workload]
    print(
        f"engine: 10 Hz, 100 ms batches (one sample per tag), {len(rule_list)} glob rules, {args.seconds:g} s"
    )
    print(f"{'workload':8} {'tags':>6} {'streams':>7} {'events':>7} {'engine M/s':>10} {'us/batch':>8} "
          f"{'naive M/s':>9} {'ratio':>6} {'of 100M':>7}")  # fmt: skip
    for workload in workloads:
        for n_tags in args.tags:
            tags = TagRegistry()
            batches = make_batches(tags, n_tags, args.seconds, workload)
            runs = [engine_rate(rule_list, tags, batches) for _ in range(args.repeat)]
            fast, events = max(runs)
            prefix = batches[: 1 + max(1, 200_000 // n_tags)]
            naive, _ = naive_rate(rule_list, prefix)
            us = n_tags / fast * 1e6
            print(f"{workload:8} {n_tags:6d} {n_tags * len(rule_list):7d} {events:7d} {fast / 1e6:10.2f} "
                  f"{us:8.0f} {naive / 1e6:9.3f} {fast / naive:6.1f} {fast / 100e6:7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
