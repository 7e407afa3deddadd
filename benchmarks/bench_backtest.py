"""End-to-end backtest throughput: CSV file -> samplefile reader -> engine -> alerts.

    .venv/bin/python benchmarks/bench_backtest.py [--rows 2000000] [--tags 200]

Writes a synthetic CSV (ISO-8601 timestamps) to a temporary directory, then times the same
path ``plantpulse rules backtest`` runs. The naive per-sample evaluator of
tests/rules/reference.py is timed on a prefix of the same samples for the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from _common import naive_rate, rules, tag_names

from plantpulse.rules.backtest import backtest
from plantpulse.samplefile import SampleReader
from plantpulse.samples import TagRegistry

NS = 1_000_000_000
START = 1_767_254_400 * NS


def write_csv(path: Path, rows: int, n_tags: int) -> None:
    rng = np.random.default_rng(2)
    names = np.array(tag_names(n_tags))
    per_tag = rows // n_tags
    ts = START + np.repeat(np.arange(per_tag, dtype=np.int64) * (NS // 10), n_tags)
    tag = np.tile(names, per_tag)
    value = (rng.uniform(20, 70, n_tags) + np.cumsum(rng.normal(0, 1.5, (per_tag, n_tags)), axis=0)).ravel()
    table = pa.table({"ts": pa.array(ts, type=pa.timestamp("ns", tz="UTC")), "tag": tag, "value": value})
    pacsv.write_csv(table, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--tags", type=int, default=200)
    args = ap.parse_args()
    rule_list = rules()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "samples.csv"
        write_csv(path, args.rows, args.tags)
        size = path.stat().st_size
        t = time.perf_counter()
        tags = TagRegistry()
        result = backtest(rule_list, SampleReader(path, tags), tags)
        total = time.perf_counter() - t
        t = time.perf_counter()
        read_tags = TagRegistry()
        n = sum(len(b) for b in SampleReader(path, read_tags))
        read = time.perf_counter() - t
        first = next(iter(SampleReader(path, TagRegistry())))
    samples = sorted(first.samples()[:100_000], key=lambda s: s.ts)
    naive = naive_rate(rule_list, samples, args.tags)
    rate = n / total
    print(f"backtest: {n:,} rows, {args.tags} tags, {len(rule_list)} rules, CSV {size / 1e6:.0f} MB")
    print(f"  end to end {rate / 1e6:8.2f} M rows/s  ({total:.2f} s, {len(result.alerts)} alerts)")
    print(f"  read only  {n / read / 1e6:8.2f} M rows/s  ({size / read / 1e6:.0f} MB/s)")
    print(f"  naive      {naive / 1e6:8.3f} M rows/s  (per-sample reference, engine only)")
    print(f"  ratio      {rate / naive:8.1f} x naive; goal 1 M rows/s -> {rate / 1e6:.2f} of goal")


if __name__ == "__main__":
    main()
