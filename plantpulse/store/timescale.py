"""Every TimescaleDB-specific statement of the PostgreSQL store, in one place.

Written against TimescaleDB's documented 2.x API (the "old" ``create_hypertable`` signature,
still supported, works on every 2.x release; compression through ``ALTER TABLE ... SET
(timescaledb.compress ...)``; policies with ``if_not_exists => TRUE`` so re-running is
harmless) and run for real against TimescaleDB 2.28.3 by tests/store/test_timescale.py;
``docs/storage.md`` lists exactly what they create: keep the three in step.

Choices, and why:
- Compression and retention share one fixed 12-hour schedule, half a period apart, retention
  first (compression need not work on chunks about to be dropped). By default both are due the
  moment they are created, and run together over the same old chunks they can deadlock (seen on
  2.28.3); on a fixed schedule they are never due together.
- The extension is used only when the server preloads it. ``CREATE EXTENSION`` on a server that
  does not ends the session with a FATAL error, so the attempt is made on a connection of its
  own (``try_create_extension``) and the store falls back to plain PostgreSQL.

Values (intervals) are always bound parameters; only fixed identifiers appear in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo

from plantpulse.config import TimescaleConfig

EXTENSION = "timescaledb"


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement with its bound parameters (never formatted into the text)."""

    sql: str
    params: tuple[Any, ...] = ()


def _interval(ns: int) -> timedelta:
    return timedelta(microseconds=ns // 1000)


# The rollup's columns are the same as the plain-PostgreSQL ``samples_1m`` table, so reads do
# not care which one they hit. Bad samples (quality 2, NaN) are left out of every aggregate.
ROLLUP_VIEW = """\
CREATE MATERIALIZED VIEW samples_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tag_id,
       time_bucket(INTERVAL '1 minute', ts) AS bucket,
       min(value) AS min,
       max(value) AS max,
       avg(value) AS avg,
       sum(value) AS sum,
       count(*) AS count,
       last(value, ts) AS last,
       max(ts) AS last_ts
FROM samples
WHERE quality < 2
GROUP BY tag_id, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA"""


def hypertable_statements(cfg: TimescaleConfig) -> list[Statement]:
    """Turn ``samples`` into a hypertable (migration 2); existing rows are migrated."""
    return [
        Statement(
            "SELECT create_hypertable('samples', 'ts', chunk_time_interval => %s, "
            "if_not_exists => TRUE, migrate_data => TRUE)",
            (_interval(cfg.chunk_interval),),
        )
    ]


# The fixed schedule of the compression and retention jobs (see the module docstring): both every
# POLICY_EVERY, retention first RETENTION_FIRST after the migration, compression half a period later.
POLICY_EVERY = timedelta(hours=12)
RETENTION_FIRST = timedelta(hours=1)
COMPRESSION_FIRST = RETENTION_FIRST + POLICY_EVERY / 2


def policy_statements(cfg: TimescaleConfig) -> list[Statement]:
    """Compression, retention and the continuous aggregate with its refresh policy (migration 3).

    ``WITH NO DATA`` lets the view be created inside the migration's transaction; the refresh
    policy materialises it and ``materialized_only = false`` serves the not-yet-refreshed tail.
    ``initial_start`` makes the schedule fixed (``now()`` is the migration's transaction start).
    """
    out = [
        Statement(
            "ALTER TABLE samples SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'tag_id', timescaledb.compress_orderby = 'ts DESC')"
        )
    ]
    if cfg.compress_after is not None:
        out.append(
            Statement(
                "SELECT add_compression_policy('samples', compress_after => %s, schedule_interval => %s, "
                "initial_start => now() + %s, if_not_exists => TRUE)",
                (_interval(cfg.compress_after), POLICY_EVERY, COMPRESSION_FIRST),
            )
        )
    if cfg.retain_for is not None:
        out.append(
            Statement(
                "SELECT add_retention_policy('samples', drop_after => %s, schedule_interval => %s, "
                "initial_start => now() + %s, if_not_exists => TRUE)",
                (_interval(cfg.retain_for), POLICY_EVERY, RETENTION_FIRST),
            )
        )
    out.append(Statement(ROLLUP_VIEW))
    out.append(
        Statement(
            "SELECT add_continuous_aggregate_policy('samples_1m', start_offset => %s, end_offset => %s, "
            "schedule_interval => %s, if_not_exists => TRUE)",
            (_interval(cfg.refresh_start), _interval(cfg.refresh_end), _interval(cfg.refresh_every)),
        )
    )
    return out


@dataclass(frozen=True, slots=True)
class Detection:
    installed: str | None  # extversion when CREATE EXTENSION has been run in this database
    available: bool  # the server has the extension's files (pg_available_extensions)
    preloaded: bool | None  # in shared_preload_libraries; None: only superusers may read it

    def describe(self) -> str:
        unloaded = ""
        if self.preloaded is False:
            unloaded = " but not preloaded (add it to shared_preload_libraries)"
        if self.installed:
            return f"installed (version {self.installed}){unloaded}"
        if self.available:
            return f"available on the server{unloaded or ' but not installed'}"
        return "not available on this server"


async def detect(conn: AsyncConnection[Any]) -> Detection:
    """Whether ``timescaledb`` is installed in this database, available, and preloaded."""
    cur = await conn.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = %s),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s),"
        " (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries')",
        (EXTENSION, EXTENSION),
    )
    row = await cur.fetchone()
    assert row is not None
    preload = None if row[2] is None else [lib.strip(' "').rsplit("/", 1)[-1] for lib in row[2].split(",")]
    return Detection(row[0], bool(row[1]), None if preload is None else EXTENSION in preload)


async def try_create_extension(conn: AsyncConnection[Any]) -> str | None:
    """``CREATE EXTENSION timescaledb`` on a connection of its own with ``conn``'s parameters:
    None when it worked, else the server's reason. On a server that does not preload the
    library the attempt ends its session (FATAL), which must not take ``conn`` with it.
    Failing to connect at all is an outage, not a reason: that error propagates."""
    params = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info if o.val is not None}
    async with await AsyncConnection.connect(make_conninfo(**params), autocommit=True) as side:
        try:
            await side.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as e:
            if e.sqlstate is None:  # the connection broke on its own: no answer from the server
                raise
            return (e.diag.message_primary or str(e)).strip()
    return None


STATUS_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "hypertable",
        "SELECT hypertable_name || ' (compression '"
        " || CASE WHEN compression_enabled THEN 'on' ELSE 'off' END || ')'"
        " FROM timescaledb_information.hypertables ORDER BY 1",
    ),
    (
        "continuous aggregate",
        "SELECT view_name || ' on ' || hypertable_name"
        " FROM timescaledb_information.continuous_aggregates ORDER BY 1",
    ),
    (
        "policy",
        "SELECT j.proc_name || ' on ' || coalesce(c.view_name, j.hypertable_name)"
        " || ' every ' || j.schedule_interval::text"
        " || coalesce(' from ' || date_trunc('second', j.initial_start)::text, '')"
        " || coalesce(' ' || j.config::text, '')"
        " FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.continuous_aggregates c"
        " ON c.materialization_hypertable_schema = j.hypertable_schema"
        " AND c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name IN"
        " ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')"
        " ORDER BY 1",
    ),
)


async def created_objects(conn: AsyncConnection[Any]) -> list[str]:
    """What timescaledb holds for us: hypertables, continuous aggregates and policies."""
    lines: list[str] = []
    for label, query in STATUS_QUERIES:
        cur = await conn.execute(query)
        lines.extend(f"{label}: {row[0]}" for row in await cur.fetchall())
    return lines
