"""Every TimescaleDB-specific statement of the PostgreSQL store, in one place.

Written against TimescaleDB's documented 2.x API (the "old" ``create_hypertable`` signature,
still supported, works on every 2.x release; compression through ``ALTER TABLE ... SET
(timescaledb.compress ...)``; policies with ``if_not_exists => TRUE`` so re-running is
harmless). The extension cannot be installed on our build machines, so tests check these
statements as text and ``docs/storage.md`` lists exactly what they create; keep the two in step.

Values (intervals) are always bound parameters; only fixed identifiers appear in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

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


def policy_statements(cfg: TimescaleConfig) -> list[Statement]:
    """Compression, retention and the continuous aggregate with its refresh policy (migration 3).

    ``WITH NO DATA`` lets the view be created inside the migration's transaction; the refresh
    policy materialises it and ``materialized_only = false`` serves the not-yet-refreshed tail.
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
                "SELECT add_compression_policy('samples', compress_after => %s, if_not_exists => TRUE)",
                (_interval(cfg.compress_after),),
            )
        )
    if cfg.retain_for is not None:
        out.append(
            Statement(
                "SELECT add_retention_policy('samples', drop_after => %s, if_not_exists => TRUE)",
                (_interval(cfg.retain_for),),
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

    def describe(self) -> str:
        if self.installed:
            return f"installed (version {self.installed})"
        return (
            "available on the server but not installed" if self.available else "not available on this server"
        )


async def detect(conn: AsyncConnection[Any]) -> Detection:
    """Whether ``timescaledb`` is installed in this database, or at least available."""
    cur = await conn.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = %s),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)",
        (EXTENSION, EXTENSION),
    )
    row = await cur.fetchone()
    assert row is not None
    return Detection(row[0], bool(row[1]))


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
        "SELECT proc_name || ' on ' || hypertable_name || ' every ' || schedule_interval::text"
        " || coalesce(' ' || config::text, '') FROM timescaledb_information.jobs"
        " WHERE proc_name IN"
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
