"""Versioned schema migrations of the PostgreSQL store.

Each step runs in its own transaction under an advisory lock, together with its row in
``schema_version``, so a crash leaves the schema at a whole version and two processes
starting at once do not race. Migrations are append-only: later issues (KPIs, notification
and escalation state) add steps at the end and never edit an applied one.

The *flavor* (``timescale`` or ``plain``) is decided once, when step 2 runs, and recorded in
``schema_version``; later steps follow it even if the extension appears afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection

from plantpulse.config import TimescaleConfig
from plantpulse.errors import StoreError
from plantpulse.store import timescale

log = logging.getLogger(__name__)

Flavor = Literal["timescale", "plain"]
_LOCK_KEY = 0x706C616E74  # "plant": serialises concurrent migrators

_V1_CORE = (
    """CREATE TABLE tags (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        asset text NOT NULL,
        unit text,
        description text)""",
    # No foreign key to tags: it would cost a lookup per row on the COPY hot path.
    """CREATE TABLE samples (
        ts timestamptz NOT NULL,
        tag_id integer NOT NULL,
        value double precision NOT NULL,
        quality smallint NOT NULL DEFAULT 0)""",
    """CREATE TABLE ingest_batches (
        id text PRIMARY KEY,
        kind text NOT NULL,
        rows integer NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX ingest_batches_committed_at ON ingest_batches (committed_at)",
    """CREATE TABLE alerts (
        id text PRIMARY KEY,
        rule text NOT NULL,
        tag text NOT NULL,
        asset text NOT NULL,
        severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
        message text NOT NULL,
        raised_at timestamptz NOT NULL,
        value double precision NOT NULL,
        cleared_at timestamptz,
        acked_at timestamptz,
        acked_by text,
        ack_comment text,
        notify text,
        on_shift jsonb NOT NULL DEFAULT '{}',
        shelved_until timestamptz,
        shelve_reason text)""",
    "CREATE INDEX alerts_raised_at ON alerts (raised_at DESC)",
    "CREATE INDEX alerts_rule_raised_at ON alerts (rule, raised_at DESC)",
    "CREATE INDEX alerts_asset ON alerts (asset text_pattern_ops)",
    # No foreign key to alerts: journal entries may be replayed from a spool independently.
    """CREATE TABLE alert_journal (
        seq bigserial PRIMARY KEY,
        alert_id text NOT NULL,
        at timestamptz NOT NULL,
        action text NOT NULL,
        actor text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}',
        UNIQUE (alert_id, at, action, actor))""",
)

# The unique (tag_id, ts) index is both the read path of ``latest``/``series`` and what keeps a
# re-sent sample from being stored twice.
_V2_INDEXES = ("CREATE UNIQUE INDEX samples_tag_ts ON samples (tag_id, ts)",)
_V2_PLAIN = ("CREATE INDEX samples_ts_brin ON samples USING brin (ts)",)

_V3_PLAIN = (
    """CREATE TABLE samples_1m (
        tag_id integer NOT NULL,
        bucket timestamptz NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        avg double precision NOT NULL,
        sum double precision NOT NULL,
        count bigint NOT NULL,
        last double precision NOT NULL,
        last_ts timestamptz NOT NULL,
        PRIMARY KEY (tag_id, bucket))""",
    # Backfill from rows stored before this version; the store keeps it up to date from here on.
    """INSERT INTO samples_1m
       SELECT tag_id, date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b,
              min(value), max(value), avg(value), sum(value), count(*),
              (array_agg(value ORDER BY ts DESC))[1], max(ts)
       FROM samples WHERE quality < 2 GROUP BY tag_id, b""",
)


# Rule and KPI changes through approval (docs/approvals.md). ``at`` is integer ns and ``detail``
# TEXT, not timestamptz/jsonb: the log is hashed, and what is hashed must read back byte for byte.
_V4_CHANGE_LOG = (
    """CREATE TABLE change_log (
        seq bigint PRIMARY KEY,
        change integer NOT NULL,
        at bigint NOT NULL,
        action text NOT NULL,
        actor text NOT NULL,
        detail text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL)""",
    "CREATE INDEX change_log_change ON change_log (change, seq)",
    """CREATE FUNCTION change_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION 'change_log is append-only'; END $$""",
    """CREATE TRIGGER change_log_append_only BEFORE UPDATE OR DELETE ON change_log
       FOR EACH ROW EXECUTE FUNCTION change_log_append_only()""",
    """CREATE TRIGGER change_log_no_truncate BEFORE TRUNCATE ON change_log
       FOR EACH STATEMENT EXECUTE FUNCTION change_log_append_only()""",
    "ALTER TABLE alerts ADD COLUMN rule_version integer",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[AsyncConnection[Any], Flavor, TimescaleConfig], Awaitable[None]]


async def _run(conn: AsyncConnection[Any], statements: tuple[str, ...]) -> None:
    for statement in statements:
        await conn.execute(statement)  # module constants, no values


async def _v1(conn: AsyncConnection[Any], flavor: Flavor, cfg: TimescaleConfig) -> None:
    await _run(conn, _V1_CORE)


async def _v2(conn: AsyncConnection[Any], flavor: Flavor, cfg: TimescaleConfig) -> None:
    await _run(conn, _V2_INDEXES)
    if flavor == "plain":
        await _run(conn, _V2_PLAIN)
        return
    for st in timescale.hypertable_statements(cfg):
        await conn.execute(st.sql, st.params)


async def _v3(conn: AsyncConnection[Any], flavor: Flavor, cfg: TimescaleConfig) -> None:
    if flavor == "plain":
        await _run(conn, _V3_PLAIN)
        return
    for st in timescale.policy_statements(cfg):
        await conn.execute(st.sql, st.params)


async def _v4(conn: AsyncConnection[Any], flavor: Flavor, cfg: TimescaleConfig) -> None:
    await _run(conn, _V4_CHANGE_LOG)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables: tags, samples, ingest_batches, alerts, alert_journal", _v1),
    Migration(2, "samples indexes; hypertable with timescaledb", _v2),
    Migration(3, "samples_1m rollup; compression, retention and refresh policies with timescaledb", _v3),
    Migration(4, "change_log (rule and KPI approvals); alerts.rule_version", _v4),
)
LATEST = MIGRATIONS[-1].version


@dataclass(frozen=True, slots=True)
class SchemaState:
    version: int
    flavor: Flavor | None  # None until step 2 has run


async def state(conn: AsyncConnection[Any]) -> SchemaState:
    """The applied version (0 on an empty database) and the recorded flavor."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return SchemaState(0, None)
    cur = await conn.execute(
        "SELECT coalesce(max(version), 0), max(flavor) FILTER (WHERE flavor IS NOT NULL) FROM schema_version"
    )
    row = await cur.fetchone()
    assert row is not None
    return SchemaState(int(row[0]), row[1])


async def _choose_flavor(conn: AsyncConnection[Any], cfg: TimescaleConfig) -> Flavor:
    """timescale when the extension is installed or can be, else plain: with one warning saying
    why when the server has the extension but it cannot be used."""
    if cfg.mode == "off":
        return "plain"
    found = await timescale.detect(conn)
    if found.installed:  # and preloaded: else its DDL event trigger failed migrate's first statement
        return "timescale"
    if not found.available:
        return "plain"
    if found.preloaded is False:
        why = "the server does not preload it: add timescaledb to shared_preload_libraries"
    else:
        failed = await timescale.try_create_extension(conn)
        if failed is None:
            return "timescale"
        why = failed
    log.warning(
        "timescaledb is on the server but cannot be used (%s); this database gets the plain"
        " PostgreSQL layout, for good",
        why,
    )
    return "plain"


async def migrate(
    conn: AsyncConnection[Any], cfg: TimescaleConfig, target: int | None = None
) -> tuple[int, int]:
    """Apply every pending step up to ``target`` (default: the latest); returns (before, after).

    ``conn`` must be in autocommit mode: each step opens its own transaction.
    """
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise ValueError(f"schema version {target} does not exist (latest is {LATEST})")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                description text NOT NULL,
                flavor text CHECK (flavor IN ('timescale', 'plain')),
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    before = (await state(conn)).version
    for step in MIGRATIONS:
        if step.version > target:
            break
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            now = await state(conn)  # re-read under the lock: another process may have done it
            if now.version >= step.version:
                continue
            # step 1 is the same for both flavors; the choice is made (and recorded) at step 2
            flavor = now.flavor or (await _choose_flavor(conn, cfg) if step.version >= 2 else "plain")
            try:
                await step.apply(conn, flavor, cfg)
            except psycopg.OperationalError:
                raise  # an outage: the store retries
            except psycopg.Error as e:
                where = f"{conn.info.host}:{conn.info.port}"
                reason = e.diag.message_primary or str(e).strip()
                what = f"schema migration {step.version} ({step.description})"
                raise StoreError(f"PostgreSQL at {where}: {what} failed: {reason}") from e
            await conn.execute(
                "INSERT INTO schema_version (version, description, flavor) VALUES (%s, %s, %s)",
                (step.version, step.description, flavor if step.version >= 2 else None),
            )
            log.info("schema migrated to version %d (%s, %s)", step.version, step.description, flavor)
    return before, (await state(conn)).version
