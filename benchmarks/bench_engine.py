"""Engine throughput at plant scale: N tags at 10 Hz in 100 ms batches (one sample per tag).

    .venv/bin/python benchmarks/bench_engine.py [--tags 10000] [--seconds 20]

Prints absolute samples/s and the ratio to the naive per-sample evaluator of
tests/rules/reference.py (measured in the same run, on a prefix of the same data).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import naive_rate, rules, tag_names

from plantpulse.rules.engine import Engine
from plantpulse.samples import SampleBatch, TagRegistry

NS = 1_000_000_000


def make_batches(tags: TagRegistry, n_tags: int, seconds: float) -> list[SampleBatch]:
    rng = np.random.default_rng(1)
    ids = np.array([tags.id(n) for n in tag_names(n_tags)], dtype=np.int32)
    level = rng.uniform(20, 70, n_tags)
    out = []
    for k in range(int(seconds * 10)):
        ts = np.full(n_tags, k * NS // 10, dtype=np.int64) + rng.integers(0, NS // 10, n_tags)
        level += rng.normal(0, 1.5, n_tags)
        np.clip(level, 0, 100, out=level)
        value = level.copy()
        value[rng.random(n_tags) < 0.001] = np.nan  # a few bad samples
        out.append(SampleBatch.make(tags, ts, ids, value))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    rule_list = rules()
    tags = TagRegistry()
    batches = make_batches(tags, args.tags, args.seconds)
    n = sum(len(b) for b in batches)

    eng = Engine(rule_list, tags)
    eng.process(batches[0])  # stream creation and first-batch work, not steady state
    t = time.perf_counter()
    events = 0
    for b in batches[1:]:
        events += len(eng.process(b))
    dt = time.perf_counter() - t
    fast = (n - len(batches[0])) / dt

    prefix = batches[1 : 1 + max(1, 200_000 // args.tags)]
    samples = [s for b in prefix for s in sorted(b.samples(), key=lambda s: s.ts)]
    naive = naive_rate(rule_list, samples, args.tags)

    streams = eng.stats.streams
    print(f"engine: {args.tags} tags x 10 Hz, 100 ms batches, {len(rule_list)} rules, {streams} streams")
    print(
        f"  engine  {fast / 1e6:8.2f} M samples/s  ({fast * len(rule_list) / 1e6:.1f} M rule evaluations/s)"
    )
    print(f"          {dt / (len(batches) - 1) * 1e3:8.2f} ms per 100 ms batch, {events} alert events")
    print(f"  naive   {naive / 1e6:8.3f} M samples/s  (per-sample reference, {len(samples)} samples)")
    print(f"  ratio   {fast / naive:8.1f} x naive; goal 100 M samples/s -> {fast / 100e6:.3f} of goal")


if __name__ == "__main__":
    main()
