"""Throughput of SQLiteStore.write_samples against a bare sqlite3 executemany, same run.

    .venv/bin/python benchmarks/bench_store_sqlite.py [--batches 50] [--rows 10000] [--tags 100]

The baseline is the floor of what any SQLite writer pays: the same samples table and unique
(tag_id, ts) index, the same pragmas (WAL, synchronous=NORMAL), one transaction per batch, rows
built from the numpy columns with tolist()+zip. The store adds the tag-id mapping, in-batch and
stored-duplicate checks, the 1-minute rollup upsert and the batch-id row, and runs off the event
loop through its executor. Both write to files in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.sqlite import MIGRATIONS, SQLiteStore

T0 = 1_700_000_000 * 1_000_000_000


def make_batches(n_batches: int, rows: int, n_tags: int) -> tuple[TagRegistry, list[SampleBatch]]:
    """Tags sampled round robin every 10 ms of event time, as a collector would deliver them."""
    reg = TagRegistry(f"line1/weld{i // 10:02d}/signal{i % 10}" for i in range(n_tags))
    rng = np.random.default_rng(0)
    out = []
    for b in range(n_batches):
        k = np.arange(b * rows, (b + 1) * rows, dtype=np.int64)
        ts = T0 + (k // n_tags) * 10_000_000
        tag = (k % n_tags).astype(np.int32)
        out.append(SampleBatch.make(reg, ts, tag, rng.normal(200.0, 5.0, rows)))
    return reg, out


def bench_bare(path: Path, batches: list[SampleBatch]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for stmt in MIGRATIONS[0][:3]:  # tags, samples, the (tag_id, ts) index
        conn.execute(stmt)
    t = time.perf_counter()
    for b in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO samples (ts, tag_id, value, quality) VALUES (?, ?, ?, ?)",
            zip(b.ts.tolist(), b.tag.tolist(), b.value.tolist(), b.quality.tolist(), strict=True),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


async def bench_store(path: Path, batches: list[SampleBatch]) -> float:
    """On a file that already holds these batch ids this times the replay path: lookup + skip."""
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    t = time.perf_counter()
    for i, b in enumerate(batches):
        await store.write_samples(b, f"bench-{i}")
    elapsed = time.perf_counter() - t
    await store.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="best of N, each on fresh files")
    args = ap.parse_args()
    _, batches = make_batches(args.batches, args.rows, args.tags)
    total = args.batches * args.rows

    bare, store, replay = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            bare.append(bench_bare(Path(tmp) / f"bare{r}.db", batches))
            store.append(asyncio.run(bench_store(Path(tmp) / f"store{r}.db", batches)))
            replay.append(asyncio.run(bench_store(Path(tmp) / f"store{r}.db", batches)))
    b, s, p = min(bare), min(store), min(replay)
    print(
        f"{args.batches} batches x {args.rows} rows, {args.tags} tags, best of {args.repeat},"
        f" sqlite {sqlite3.sqlite_version}"
    )
    print(f"  bare executemany      {total / b:>12,.0f} rows/s   1.00x")
    print(f"  SQLiteStore.write     {total / s:>12,.0f} rows/s   {b / s:.2f}x of bare")
    print(f"  replay (skipped ids)  {args.batches / p:>12,.0f} batches/s")


if __name__ == "__main__":
    main()
