"""How fast a spool backlog reaches the store after an outage, against one record per transaction.

    .venv/bin/python benchmarks/bench_spool_catchup.py [--seconds 30] [--rate 2000] [--per-record 20]
                                                       [--pg postgresql://postgres@127.0.0.1:5432/test]

The backlog is what a ``--seconds`` outage leaves at a live rate of ``--rate`` samples/s
arriving in input records of ``--per-record`` samples (the issue's case: 2,000 samples/s, 30 s).
It is written to a spool once, then each run copies it and times ``SpoolWriter`` draining it
into a fresh store: SQLite, and PostgreSQL in a throwaway database next to ``--pg``. Baseline,
same run: ``commit_samples: 1``, one spool record per store transaction, which is how every
record was committed before. Prints samples/s and the ratio to the live rate (goal >= 5).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from plantpulse.config import SpoolConfig, StoreConfig
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store import Store, open_store
from plantpulse.store.records import KIND_INPUT, Route, encode_input
from plantpulse.store.spool import Spool, SpoolWriter


def fill(spool: Path, seconds: int, rate: int, per_record: int) -> int:
    reg = TagRegistry(f"line1/m{k:03d}/temp" for k in range(200))
    sp = Spool(spool, fsync=False)
    sp.open()
    n = seconds * rate
    t0 = (time.time_ns() // 1_000_000_000 - seconds - 60) * 1_000_000_000
    step = 1_000_000_000 // rate
    for start in range(0, n, per_record):
        i = np.arange(start, min(start + per_record, n))
        batch = SampleBatch.make(reg, t0 + i * step, i % 200, np.sin(i) * 10 + 50)
        sp.append(
            KIND_INPUT, secrets.token_hex(16), encode_input(Route.LIVE, "bench", int(batch.ts.max()), batch)
        )
    sp.close()
    return n


async def drain(store: Store, spool: Path, commit_samples: int) -> float:
    writer = SpoolWriter(store, SpoolConfig(dir=spool, commit_samples=commit_samples))
    await writer.start()
    await writer.opened()
    started = time.perf_counter()
    await writer.flush()
    took = time.perf_counter() - started
    await writer.stop()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--per-record", type=int, default=20)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n = fill(work / "backlog", args.seconds, args.rate, args.per_record)
        print(
            f"backlog: {n:,} samples in {n // args.per_record:,} records "
            f"({args.seconds} s at {args.rate:,} samples/s); live rate {args.rate:,} samples/s"
        )
        for kind in ("sqlite", "postgresql"):
            for label, commit in (("one record per transaction", 1), ("grouped (default)", 50_000)):
                spool = work / f"{kind}-{commit}"
                shutil.copytree(work / "backlog", spool)
                if kind == "sqlite":
                    url, dropdb = f"sqlite:///{work / f'{kind}-{commit}.db'}", None
                else:
                    name = f"bench_catchup_{secrets.token_hex(4)}"
                    with psycopg.connect(args.pg, autocommit=True) as conn:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    url, dropdb = args.pg.rsplit("/", 1)[0] + "/" + name, name
                try:
                    took = asyncio.run(drain(open_store(StoreConfig(url=url)), spool, commit))
                finally:
                    if dropdb is not None:
                        with psycopg.connect(args.pg, autocommit=True) as conn:
                            conn.execute(
                                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dropdb))
                            )
                rate = n / took
                print(
                    f"{kind:10s} {label:28s} {rate:>10,.0f} samples/s  {took:6.2f} s"
                    f"  {rate / args.rate:6.1f}x live"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
