"""Rows/s into PostgreSQL: PostgresStore.write_samples vs psql COPY FROM STDIN vs naive executemany.

    .venv/bin/python benchmarks/bench_store_pg.py [--dsn postgresql://postgres@127.0.0.1:5432/test]
        [--batches 20] [--rows 50000] [--tags 100] [--naive-rows 20000] [--repeat 3]

All three write the same rows into tables with the same columns and indexes (unique btree
(tag_id, ts), BRIN (ts)) in a throwaway database created next to ``--dsn`` and dropped at
the end. ``psql`` gets the whole data set as one file on stdin, once as CSV and once in the
binary COPY format, in one transaction: the floor of what any client can do. The store writes
``--batches`` transactions of ``--rows`` rows each, with its batch-id row, tag mapping and the
samples_1m rollup upsert included. Client CPU is ``time.process_time`` of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.postgres import PostgresStore, copy_payload

T0 = 1_767_225_600 * 1_000_000_000


def make_batches(n_batches: int, rows: int, n_tags: int) -> list[SampleBatch]:
    """Tags sampled round robin every 10 ms of event time, as a collector would deliver them."""
    reg = TagRegistry(f"line1/weld{i // 10:02d}/signal{i % 10}" for i in range(n_tags))
    rng = np.random.default_rng(0)
    out = []
    for b in range(n_batches):
        k = np.arange(b * rows, (b + 1) * rows, dtype=np.int64)
        ts = T0 + (k // n_tags) * 10_000_000
        out.append(SampleBatch.make(reg, ts, (k % n_tags).astype(np.int32), rng.normal(200.0, 5.0, rows)))
    return out


def _like_samples(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    t = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (ts timestamptz NOT NULL, tag_id integer NOT NULL,"
            " value double precision NOT NULL, quality smallint NOT NULL DEFAULT 0)"
        ).format(t)
    )
    conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (tag_id, ts)").format(t))
    conn.execute(sql.SQL("CREATE INDEX ON {} USING brin (ts)").format(t))


async def bench_store(url: str, batches: list[SampleBatch]) -> tuple[float, float]:
    store = PostgresStore(url)
    await store.open()
    async with store._conn() as conn:  # a fresh start for each repeat
        await conn.execute("TRUNCATE samples, samples_1m, ingest_batches")
    await store.write_samples(batches[0].take(slice(0, 1)), "warm-up")  # tag ids, pool, caches
    async with store._conn() as conn:
        await conn.execute("TRUNCATE samples, samples_1m, ingest_batches")
    c, t = time.process_time(), time.perf_counter()
    for i, b in enumerate(batches):
        await store.write_samples(b, f"bench-{i}")
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    await store.close()
    return elapsed, cpu


def bench_psql(url: str, path: Path, fmt: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        _like_samples(conn, "samples_psql")
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    cmd += ["-c", f"COPY samples_psql (ts, tag_id, value, quality) FROM STDIN (FORMAT {fmt})"]
    with path.open("rb") as f:
        t = time.perf_counter()
        subprocess.run(cmd, stdin=f, check=True)
        return time.perf_counter() - t


def bench_naive(url: str, batch: SampleBatch, tag_ids: npt.NDArray[np.int32]) -> tuple[float, float]:
    with psycopg.connect(url) as conn:
        _like_samples(conn, "samples_naive")
        conn.commit()
        rows = [
            (datetime.fromtimestamp(t / 1e9, UTC), g, v, q)
            for t, g, v, q in zip(
                batch.ts.tolist(), tag_ids.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True
            )
        ]
        c, t = time.process_time(), time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO samples_naive (ts, tag_id, value, quality) VALUES (%s, %s, %s, %s)", rows
            )
        conn.commit()
        return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--dsn", default=os.environ.get("PLANTPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    )
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--naive-rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N")
    args = ap.parse_args()
    batches = make_batches(args.batches, args.rows, args.tags)
    total = args.batches * args.rows

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()
    url = urlunsplit(urlsplit(args.dsn)._replace(path="/" + name))
    try:
        store_runs = [asyncio.run(bench_store(url, batches)) for _ in range(args.repeat)]
        with psycopg.connect(url) as conn:
            lut = dict(conn.execute("SELECT name, id FROM tags").fetchall())
        reg = batches[0].tags
        db_ids = np.array([lut[n] for n in reg.names], dtype=np.int32)
        allb = SampleBatch.concat(reg, batches)
        with tempfile.TemporaryDirectory() as tmp:
            binary, csv = Path(tmp) / "rows.bin", Path(tmp) / "rows.csv"
            binary.write_bytes(copy_payload(allb.ts, db_ids[allb.tag], allb.value, allb.quality))
            iso = np.datetime_as_string(allb.ts.astype("datetime64[us]"), unit="us")
            with csv.open("w") as f:
                for t, g, v, q in zip(
                    iso.tolist(),
                    db_ids[allb.tag].tolist(),
                    allb.value.tolist(),
                    allb.quality.tolist(),
                    strict=True,
                ):
                    f.write(f"{t}+00,{g},{v!r},{q}\n")
            psql_csv = min(bench_psql(url, csv, "csv") for _ in range(args.repeat))
            psql_bin = min(bench_psql(url, binary, "binary") for _ in range(args.repeat))
        naive_b = batches[0].take(slice(0, args.naive_rows))
        naive_runs = [bench_naive(url, naive_b, db_ids[naive_b.tag]) for _ in range(args.repeat)]
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    s_wall, s_cpu = min(store_runs)
    n_wall, n_cpu = min(naive_runs)
    n_rows = len(naive_b)
    store_rate = total / s_wall
    print(
        f"{args.batches} batches x {args.rows} rows ({total:,} rows), {args.tags} tags,"
        f" best of {args.repeat}, PostgreSQL {version[0] if version else '?'}, one connection"
    )
    print(f"  psql COPY csv (1 txn)        {total / psql_csv:>12,.0f} rows/s")
    print(f"  psql COPY binary (1 txn)     {total / psql_bin:>12,.0f} rows/s")
    print(
        f"  PostgresStore.write_samples  {store_rate:>12,.0f} rows/s   {psql_csv / s_wall:.2f}x of psql csv,"
        f" {psql_bin / s_wall:.2f}x of psql binary   client CPU {s_cpu / total * 1e6:.2f} us/row"
    )
    print(
        f"  naive executemany INSERT     {n_rows / n_wall:>12,.0f} rows/s   ({n_rows:,} rows)"
        f"   client CPU {n_cpu / n_rows * 1e6:.2f} us/row"
        f"   store is {store_rate / (n_rows / n_wall):.1f}x faster"
    )


if __name__ == "__main__":
    main()
