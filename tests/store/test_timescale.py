"""The TimescaleDB layout on a real TimescaleDB (2.28.3, ../shared/timescaledb/install.sh).

What migration 2 and 3 create (read back from ``timescaledb_information``), the policy jobs run
for real with ``CALL run_job``, ``series`` read from the materialised continuous aggregate, and
the fallback to plain PostgreSQL on a server that has the extension's files but does not
preload it (a private cluster, conftest.unpreloaded_cluster).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from pg_helpers import PLANT_PASSWORD, PLANT_ROLE, Cluster, create_database, drop_database
from psycopg import sql
from test_contract import assert_buckets

from plantpulse.cli import main
from plantpulse.config import StoreConfig, TimescaleConfig
from plantpulse.errors import StoreError
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store import timescale
from plantpulse.store.postgres import PostgresStore, dt_to_ns, ns_to_dt

pytestmark = pytest.mark.postgres

MS = 1_000_000
S = 1000 * MS
MIN, HOUR, DAY = 60 * S, 3600 * S, 86_400 * S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z, a whole hour
TAGS = ["line1/weld01/current", "line1/weld02/current", "线体2/焊机01/电流"]


@pytest.fixture
def ts_url(pg_dsn: str) -> Iterator[str]:
    """A fresh database with CREATE EXTENSION timescaledb (a failure under CI, else a skip)."""
    url = create_database(pg_dsn, "test_ts", timescale=True)
    try:
        yield url
    finally:
        drop_database(pg_dsn, url)


async def _open(url: str, cfg: TimescaleConfig) -> PostgresStore:
    s = PostgresStore(url, StoreConfig(url=url, timescale=cfg))
    await s.open()
    assert s.flavor == "timescale"
    return s


@pytest.fixture
async def conn(ts_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(ts_url, autocommit=True) as c:
        yield c


async def _rows(
    conn: psycopg.AsyncConnection[Any], query: str | sql.Composable, *params: Any
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def _jobs(conn: psycopg.AsyncConnection[Any]) -> dict[str, tuple[Any, ...]]:
    """proc name -> (job id, schedule, fixed schedule, first start, config) of our policies."""
    rows = await _rows(
        conn,
        "SELECT proc_name, job_id, schedule_interval, fixed_schedule, initial_start, config"
        " FROM timescaledb_information.jobs WHERE proc_name IN"
        " ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')",
    )
    return {r[0]: r[1:] for r in rows}


def _batch(reg: TagRegistry, start: int, n: int, step: int = S, seed: int = 1) -> SampleBatch:
    """n samples per tag every ``step`` from ``start``, ~5 % bad (half of those NaN)."""
    rng = np.random.default_rng(seed)
    k = np.arange(n * len(TAGS))
    ts = start + (k // len(TAGS)) * step
    value = np.round(rng.normal(200.0, 15.0, len(k)), 3)
    quality = np.where(rng.random(len(k)) < 0.05, Quality.BAD, Quality.GOOD).astype(np.uint8)
    value[(quality == Quality.BAD) & (rng.random(len(k)) < 0.5)] = np.nan
    return SampleBatch.make(reg, ts, reg.ids(TAGS)[k % len(TAGS)], value, quality)


# -- what the layout creates ---------------------------------------------------------------------------

CUSTOM = TimescaleConfig(
    chunk_interval="6h",
    compress_after="3d",
    retain_for="90d",
    refresh_start="2d",
    refresh_end="2m",
    refresh_every="5m",
)


async def test_what_the_timescale_layout_creates(ts_url: str, conn: psycopg.AsyncConnection[Any]) -> None:
    s = await _open(ts_url, CUSTOM)
    await s.close()
    assert await _rows(
        conn,
        "SELECT column_name, time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'samples'",
    ) == [("ts", timedelta(hours=6))]
    assert await _rows(
        conn,
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        " WHERE hypertable = 'samples'::regclass",
    ) == [("tag_id", "ts DESC")]
    ((view, on, materialized_only, definition),) = await _rows(
        conn,
        "SELECT view_name, hypertable_name, materialized_only, view_definition"
        " FROM timescaledb_information.continuous_aggregates",
    )
    assert (view, on, materialized_only) == ("samples_1m", "samples", False)
    assert "last(samples.value, samples.ts) AS last" in definition and "quality < 2" in definition

    jobs = await _jobs(conn)
    assert sorted(jobs) == ["policy_compression", "policy_refresh_continuous_aggregate", "policy_retention"]
    _, every, fixed, first, config = jobs["policy_compression"]
    assert (every, fixed, config["compress_after"]) == (timedelta(hours=12), True, "3 days")
    _, every, fixed, first_retention, config = jobs["policy_retention"]
    assert (every, fixed, config["drop_after"]) == (timedelta(hours=12), True, "90 days")
    _, every, _, _, config = jobs["policy_refresh_continuous_aggregate"]
    assert every == timedelta(minutes=5)
    assert (config["start_offset"], config["end_offset"]) == ("2 days", "00:02:00")

    # Staggered: retention 1 h after migration 3 (its applied_at is the same now()), compression
    # half their common period later, so the two are never due at the same moment.
    ((applied,),) = await _rows(conn, "SELECT applied_at FROM schema_version WHERE version = 3")
    assert first_retention - applied == timescale.RETENTION_FIRST == timedelta(hours=1)
    assert first - first_retention == timescale.POLICY_EVERY / 2 == timedelta(hours=6)

    # if_not_exists => TRUE works on this version: re-running every idempotent statement of the
    # layout changes nothing (the view itself is created once, by migration 3).
    async with conn.transaction():
        for st in [*timescale.hypertable_statements(CUSTOM), *timescale.policy_statements(CUSTOM)]:
            if not st.sql.startswith("CREATE MATERIALIZED VIEW"):
                await conn.execute(st.sql, st.params)
    assert await _jobs(conn) == jobs


async def test_null_policies_create_no_jobs(ts_url: str, conn: psycopg.AsyncConnection[Any]) -> None:
    s = await _open(ts_url, TimescaleConfig(compress_after=None, retain_for=None))
    await s.close()
    assert sorted(await _jobs(conn)) == ["policy_refresh_continuous_aggregate"]
    assert await _rows(
        conn,
        "SELECT compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'samples'",
    ) == [(True,)]


# -- the jobs, run for real ---------------------------------------------------------------------------


async def test_retention_then_compression_then_refresh_jobs_run(
    ts_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    """The jobs in their scheduled order, each over data it acts on: retention drops the chunks
    older than 30 days, compression compresses those older than 7 days (still readable and still
    exactly-once for a late batch), the refresh materialises the last day's minutes."""
    s = await _open(ts_url, TimescaleConfig(compress_after="7d", retain_for="30d"))
    try:
        ((now,),) = await _rows(conn, "SELECT date_trunc('hour', now())")
        hour = dt_to_ns(now)
        reg = TagRegistry()
        starts = {"old": hour - 40 * DAY, "mid": hour - 10 * DAY, "recent": hour - 3 * HOUR}
        batches = {k: _batch(reg, start, 600, seed=i) for i, (k, start) in enumerate(starts.items())}
        for k, b in batches.items():
            assert await s.write_samples(b, k)
        mid = starts["mid"]
        mid_before = [await s.series(tag, mid, mid + 600 * S, MIN) for tag in TAGS]
        latest = await s.latest()
        jobs = {name: job[0] for name, job in (await _jobs(conn)).items()}

        await conn.execute("CALL run_job(%s)", (jobs["policy_retention"],))
        assert await _rows(conn, "SELECT min(ts) >= %s FROM samples", now - timedelta(days=30)) == [(True,)]
        assert await _rows(conn, "SELECT count(*) FROM samples") == [(2 * 600 * len(TAGS),)]

        await conn.execute("CALL run_job(%s)", (jobs["policy_compression"],))
        chunks = await _rows(
            conn,
            "SELECT range_end <= now() - INTERVAL '7 days', is_compressed FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'samples' ORDER BY range_start",
        )
        assert (True, True) in chunks and all(old == compressed for old, compressed in chunks)
        for tag, before in zip(TAGS, mid_before, strict=True):  # sums may add up in another order
            assert_buckets(await s.series(tag, mid, mid + 600 * S, MIN), before)
        assert await s.latest() == latest
        # A late batch into the compressed chunk: a repeated (tag, ts) is not doubled, a new one goes in.
        late = SampleBatch.make(reg, [mid, mid + S // 2], reg.ids([TAGS[0], TAGS[0]]), [-1.0, -2.0])
        assert await s.write_samples(late, "late")
        assert await _rows(conn, "SELECT count(*) FROM samples WHERE ts = %s", ns_to_dt(mid)) == [(3,)]
        assert await _rows(conn, "SELECT value FROM samples WHERE value < 0") == [(-2.0,)]

        await conn.execute("CALL run_job(%s)", (jobs["policy_refresh_continuous_aggregate"],))
        recent = batches["recent"]
        good = recent.quality != Quality.BAD
        minutes = {(int(t), int(m)) for t, m in zip(recent.tag[good], recent.ts[good] // MIN, strict=True)}
        query = sql.SQL("SELECT count(*) FROM {}").format(await _materialization(conn))
        assert await _rows(conn, query) == [(len(minutes),)]
    finally:
        await s.close()


async def _materialization(conn: psycopg.AsyncConnection[Any]) -> sql.Identifier:
    """The hypertable that holds samples_1m's materialised rows."""
    ((schema, name),) = await _rows(
        conn,
        "SELECT materialization_hypertable_schema, materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = 'samples_1m'",
    )
    return sql.Identifier(schema, name)


# -- series() from the continuous aggregate ------------------------------------------------------------


async def test_series_reads_the_refreshed_aggregate_and_equals_the_raw_path(
    ts_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    s = await _open(ts_url, TimescaleConfig(retain_for=None))
    try:
        reg = TagRegistry()
        for i in range(3):  # 90 minutes, 1.5 s apart, in three batches
            assert await s.write_samples(
                _batch(reg, T0 + i * 1800 * S, 1200, step=1500 * S // 1000, seed=i), f"b{i}"
            )
        lo, hi = T0, T0 + 90 * MIN
        await conn.execute(
            "CALL refresh_continuous_aggregate('samples_1m', %s::timestamptz, %s::timestamptz)",
            (ns_to_dt(lo), ns_to_dt(hi)),
        )
        # From here series() can only see what the refresh materialised.
        await conn.execute("ALTER MATERIALIZED VIEW samples_1m SET (timescaledb.materialized_only = true)")
        for tag in TAGS:
            for bucket in (MIN, 5 * MIN, 60 * MIN):
                rolled = await s.series(tag, lo, hi, bucket)
                assert len(rolled) == -(-90 * MIN // bucket)
                assert_buckets(rolled, await s._series(tag, lo, hi, bucket, rollup=False))
        await conn.execute("ALTER MATERIALIZED VIEW samples_1m SET (timescaledb.materialized_only = false)")

        # A late sample in an already materialised minute shows after the next refresh (docs/storage.md).
        late = SampleBatch.make(reg, [T0 + 500 * MS], reg.ids([TAGS[0]]), [1e6])
        assert await s.write_samples(late, "late")
        (first,) = await s.series(TAGS[0], T0, T0 + MIN, MIN)
        assert first.max < 1e6
        await conn.execute(
            "CALL refresh_continuous_aggregate('samples_1m', %s::timestamptz, %s::timestamptz)",
            (ns_to_dt(lo), ns_to_dt(lo + MIN)),
        )
        (first,) = await s.series(TAGS[0], T0, T0 + MIN, MIN)
        assert first.max == 1e6
    finally:
        await s.close()


# -- a server with the extension's files that does not preload it --------------------------------------


def _cluster_url(cluster: Cluster, db: str, user: str = "postgres") -> str:
    auth = f"{user}:{PLANT_PASSWORD}" if user == PLANT_ROLE else user
    return f"postgresql://{auth}@127.0.0.1:{cluster.port}/{db}"


@pytest.fixture
def fresh_on_cluster(unpreloaded_cluster: Cluster) -> Iterator[str]:
    """A new database on the unpreloaded cluster (the store connects as superuser postgres)."""
    name = f"fresh_{secrets.token_hex(4)}"
    with psycopg.connect(unpreloaded_cluster.url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _cluster_url(unpreloaded_cluster, name)
    with psycopg.connect(unpreloaded_cluster.url, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def _falls_back(url: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Open a store (mode auto) on ``url``: plain layout, working, no extension; the warnings."""
    caplog.set_level(logging.WARNING)
    s = PostgresStore(url, StoreConfig(url=url))
    await s.open()
    try:
        assert s.flavor == "plain"
        reg = TagRegistry()
        b = _batch(reg, T0, 120)
        assert await s.write_samples(b, "b1")
        good = int(np.sum((b.tag == reg.id(TAGS[0])) & (b.quality != Quality.BAD)))
        assert sum(x.count for x in await s.series(TAGS[0], T0, T0 + 2 * MIN, MIN)) == good
    finally:
        await s.close()
    async with await psycopg.AsyncConnection.connect(url) as c:
        assert (await timescale.detect(c)).installed is None
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_not_preloaded_falls_back_to_plain_with_one_warning(
    fresh_on_cluster: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The superuser can read shared_preload_libraries: no CREATE EXTENSION is even tried."""
    warnings = await _falls_back(fresh_on_cluster, caplog)
    assert warnings == [
        "timescaledb is on the server but cannot be used (the server does not preload it: add"
        " timescaledb to shared_preload_libraries); this database gets the plain PostgreSQL layout, for good"
    ]
    assert await asyncio.to_thread(main, ["db", "status", "--store", fresh_on_cluster]) == 0
    out = capsys.readouterr().out
    assert (
        "timescaledb: available on the server but not preloaded (add it to shared_preload_libraries)" in out
    )
    assert "layout:      plain PostgreSQL" in out


async def test_not_preloaded_falls_back_for_a_role_that_cannot_read_the_setting(
    unpreloaded_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A database owner may CREATE EXTENSION timescaledb (a trusted extension) but not read
    shared_preload_libraries: the attempt ends its own session with a FATAL error, on a
    connection of its own, and the migration carries on on plain PostgreSQL."""
    warnings = await _falls_back(_cluster_url(unpreloaded_cluster, "plant", PLANT_ROLE), caplog)
    assert warnings == [
        'timescaledb is on the server but cannot be used (extension "timescaledb" must be preloaded);'
        " this database gets the plain PostgreSQL layout, for good"
    ]


async def test_a_timescale_database_on_a_server_that_stopped_preloading_is_refused(
    unpreloaded_cluster: Cluster,
) -> None:
    """Writing on would put rows into the hypertable's root table, where TimescaleDB never reads
    them. The extension's DDL event trigger fails the migration's first statement with
    TimescaleDB's own error: the store refuses to open, for good (not an outage to wait out)."""
    s = PostgresStore(_cluster_url(unpreloaded_cluster, "was_timescale"))
    with pytest.raises(StoreError) as err:
        await s.open()
    assert type(err.value) is StoreError
    assert str(err.value) == (
        f'PostgreSQL at 127.0.0.1:{unpreloaded_cluster.port}: extension "timescaledb" must be preloaded'
    )
