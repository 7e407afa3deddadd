"""PostgreSQL / TimescaleDB store (psycopg 3, asyncio, one connection pool).

Ingest is one transaction per batch: the batch id goes into ``ingest_batches`` first (a
duplicate id ends the transaction with nothing written, which is what makes spool replays
exactly-once), then the rows go in by one binary ``COPY`` whose payload numpy builds in one
piece, then, on plain PostgreSQL, the ``samples_1m`` rollup is merged by one
``INSERT ... ON CONFLICT`` over arrays. With TimescaleDB the rollup is a continuous aggregate
and the store does not touch it. Timestamps are ``timestamptz``: nanoseconds are truncated
to microseconds on the way in.

psycopg errors are translated here (``_store_error``): an outage (refused, timed out, connection
lost) becomes ``StoreUnavailable``, retried; anything retrying cannot cure (credentials or database
name refused, SQL errors) a plain ``StoreError``. Messages name host:port, never the password.
"""

from __future__ import annotations

import logging
import os
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from plantpulse.alerts import Alert, AlertEvent, JournalEntry
from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.samples import F64, I32, I64, U8, Quality, Sample, SampleBatch, TagRegistry, asset_of
from plantpulse.store import migrations
from plantpulse.store.base import Bucket, TagInfo

log = logging.getLogger(__name__)

__all__ = ["PostgresStore", "copy_payload", "masked_dsn", "rollup"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, the zero of PostgreSQL's binary timestamptz
_MINUTE_NS = 60_000_000_000
_BATCH_IDS_KEPT = timedelta(days=7)  # far longer than any spool replay can lag behind
_PRUNE_EVERY_S = 3600.0

# PostgreSQL binary COPY: signature, flags, header extension length; per row a field count
# then (length, value) per field, all big-endian; trailer -1. One packed record per row.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_COPY_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("tag_len", ">i4"),
        ("tag", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
    ]
)
_COPY_SAMPLES = "COPY samples (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)"

_ROLLUP_UPSERT = """\
INSERT INTO samples_1m AS r (tag_id, bucket, min, max, avg, sum, count, last, last_ts)
SELECT t, to_timestamp(b), mn, mx, s / c, s, c, l, to_timestamp(0) + lt * INTERVAL '1 microsecond'
FROM unnest(%s::int4[], %s::int8[], %s::float8[], %s::float8[],
            %s::float8[], %s::int8[], %s::float8[], %s::int8[]) AS u(t, b, mn, mx, s, c, l, lt)
ON CONFLICT (tag_id, bucket) DO UPDATE SET
    min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max),
    sum = r.sum + excluded.sum,
    count = r.count + excluded.count,
    avg = (r.sum + excluded.sum) / (r.count + excluded.count),
    last = CASE WHEN excluded.last_ts >= r.last_ts THEN excluded.last ELSE r.last END,
    last_ts = greatest(r.last_ts, excluded.last_ts)"""

# Series buckets are floored in whole microseconds since the epoch (correct for negative
# instants too); ``last`` is the value with the latest timestamp in the bucket.
_SERIES_ROLLUP = """\
WITH m AS (
    SELECT (extract(epoch FROM r.bucket) * 1000000)::bigint AS us, r.min, r.max, r.sum, r.count,
           r.last, r.last_ts
    FROM samples_1m r JOIN tags t ON t.id = r.tag_id
    WHERE t.name = %(tag)s AND r.bucket >= %(lo)s AND r.bucket < %(hi)s)
SELECT us - ((us %% %(b)s) + %(b)s) %% %(b)s AS b, min(min), max(max), sum(sum),
       (array_agg(last ORDER BY last_ts DESC))[1], sum(count)::bigint
FROM m GROUP BY 1 ORDER BY 1"""
_SERIES_RAW = """\
WITH m AS (
    SELECT (extract(epoch FROM s.ts) * 1000000)::bigint AS us, s.ts, s.value
    FROM samples s JOIN tags t ON t.id = s.tag_id
    WHERE t.name = %(tag)s AND s.ts >= %(lo)s AND s.ts < %(hi)s AND s.quality < 2)
SELECT us - ((us %% %(b)s) + %(b)s) %% %(b)s AS b, min(value), max(value), sum(value),
       (array_agg(value ORDER BY ts DESC))[1], count(*)
FROM m GROUP BY 1 ORDER BY 1"""

_READ_RANGE = """\
SELECT ts, tag_id, value, quality FROM samples
WHERE tag_id = ANY(%(ids)s) AND ts >= %(start)s AND ts < %(end)s ORDER BY ts, tag_id"""
_READ_PRIOR = """\
SELECT p.ts, p.tag_id, p.value, p.quality FROM unnest(%(ids)s::int4[]) AS t(id)
CROSS JOIN LATERAL (SELECT ts, tag_id, value, quality FROM samples
                    WHERE tag_id = t.id AND ts < %(start)s ORDER BY ts DESC LIMIT 1) AS p
ORDER BY p.ts, p.tag_id"""

_ALERT_COLUMNS = (
    "id, rule, tag, asset, severity, message, raised_at, value, cleared_at, acked_at, acked_by,"
    " ack_comment, notify, on_shift, shelved_until, shelve_reason, rule_version"
)
_ALERT_INSERT = """\
INSERT INTO alerts (id, rule, tag, asset, severity, message, raised_at, value, cleared_at, notify, on_shift,
                    rule_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
_ALERT_RAISE = _ALERT_INSERT + " ON CONFLICT (id) DO NOTHING"
_ALERT_CLEAR = (
    _ALERT_INSERT
    + " ON CONFLICT (id) DO UPDATE SET cleared_at = excluded.cleared_at WHERE alerts.cleared_at IS NULL"
)
_JOURNAL_INSERT = """\
INSERT INTO alert_journal (alert_id, at, action, actor, detail) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (alert_id, at, action, actor) DO NOTHING"""


def ns_to_dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def dt_to_ns(dt: datetime) -> int:
    return (dt - _EPOCH) // _US * 1000


def copy_payload(ts_ns: I64, tag_ids: I32, value: F64, quality: U8) -> bytes:
    """The whole binary COPY stream for ``samples (ts, tag_id, value, quality)``, built by numpy."""
    rows = np.empty(len(ts_ns), dtype=_COPY_ROW)
    rows["nfields"] = 4
    rows["ts_len"] = 8
    rows["ts"] = ts_ns // 1000 - _PG_EPOCH_US
    rows["tag_len"] = 4
    rows["tag"] = tag_ids
    rows["value_len"] = 8
    rows["value"] = value
    rows["quality_len"] = 2
    rows["quality"] = quality
    return b"".join((_COPY_HEADER, rows.tobytes(), _COPY_TRAILER))


def rollup(ts_ns: I64, tag_ids: I32, value: F64, quality: U8) -> list[list[Any]] | None:
    """Per (tag, minute) min/max/sum/count/last of the good samples, as the 8 parameter arrays of
    ``_ROLLUP_UPSERT`` (tag, minute start in s, min, max, sum, count, last, last ts in µs)."""
    good = quality != Quality.BAD
    ts, tag, val = ts_ns[good], tag_ids[good], value[good]
    if len(ts) == 0:
        return None
    minute = ts // _MINUTE_NS
    key = (tag.astype(np.int64) << 32) | (minute - minute.min())
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(key, kind="stable")  # already in time order: stability keeps it
    else:
        order = np.lexsort((ts, key))
    key, ts, tag, val, minute = key[order], ts[order], tag[order], val[order], minute[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ends = np.concatenate((starts[1:], [len(key)])) - 1
    return [
        tag[starts].tolist(),
        (minute[starts] * 60).tolist(),
        np.minimum.reduceat(val, starts).tolist(),
        np.maximum.reduceat(val, starts).tolist(),
        np.add.reduceat(val, starts).tolist(),
        (ends - starts + 1).tolist(),
        val[ends].tolist(),
        (ts[ends] // 1000).tolist(),
    ]


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(url: str) -> str:
    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise StoreError(f"store URL refers to ${{{m.group(1)}}}, which is not set in the environment")
        return value

    return _ENV_REF.sub(sub, url)


def masked_dsn(conninfo: str) -> str:
    """The connection target for logs and messages: user, host, port, database; never the password."""
    try:
        p = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = p.get("user") or os.environ.get("PGUSER") or ""
    secret = ":***" if p.get("password") or os.environ.get("PGPASSWORD") else ""
    host = p.get("host") or os.environ.get("PGHOST") or "localhost"
    port = p.get("port") or os.environ.get("PGPORT") or "5432"
    db = p.get("dbname") or os.environ.get("PGDATABASE") or ""
    auth = f"{user}{secret}@" if user or secret else ""
    return f"postgresql://{auth}{host}:{port}/{db}"


def _host_port(conninfo: str) -> str:
    return masked_dsn(conninfo).rpartition("@")[2].partition("/")[0].removeprefix("postgresql://")


class PostgresStore:
    """The ``Store`` on PostgreSQL >= 14, with or without the timescaledb extension.

    ``url`` may hold ``${VAR}`` references (expanded from the environment when the store is
    created); anything missing from it comes from the standard ``PG*`` variables via libpq.
    """

    def __init__(self, url: str, config: StoreConfig | None = None) -> None:
        self._cfg = config or StoreConfig(url=url)
        timeout_s = max(2, round(self._cfg.connect_timeout / 1e9))
        self._conninfo = make_conninfo(
            _expand_env(url), connect_timeout=timeout_s, application_name="plantpulse"
        )
        self._timeout = float(timeout_s)
        self.dsn = masked_dsn(self._conninfo)
        self._where = _host_port(self._conninfo)
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self.flavor: migrations.Flavor | None = None
        self.schema_version = 0
        self._rollup_table = False  # plain PostgreSQL: the store maintains samples_1m itself
        self._tag_ids: dict[str, int] = {}
        self._luts: weakref.WeakKeyDictionary[TagRegistry, I32] = weakref.WeakKeyDictionary()
        self._next_prune = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate; idempotent. StoreUnavailable when the server cannot be reached
        (retry later), StoreError when it refuses for good (credentials, unknown database, a
        failing migration, a TimescaleDB database on a server that no longer preloads it)."""
        if self._pool is not None:
            return
        async with self.admin_connection() as conn:
            await migrations.migrate(conn, self._cfg.timescale)
            st = await migrations.state(conn)
            cur = await conn.execute(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('samples_1m')"
            )
            row = await cur.fetchone()
            cur = await conn.execute("SELECT name, id FROM tags")
            tag_ids = {name: tid for name, tid in await cur.fetchall()}
        self._pool = await open_pool(
            self._conninfo, self._cfg.pool_size, self._timeout, "plantpulse", self._where
        )
        self._tag_ids = tag_ids
        self.flavor, self.schema_version = st.flavor, st.version
        self._rollup_table = row is not None and row[0] == "r"
        log.info("PostgreSQL store %s open: schema version %d, %s", self.dsn, st.version, st.flavor)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def admin_connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """One autocommit connection outside the pool and without migrating: for migrations and
        ``plantpulse db``. psycopg errors raised inside are translated at this edge."""
        try:
            async with await AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                yield conn
        except (psycopg.Error, OSError) as e:
            raise _store_error(e, self._where) from e

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection; psycopg errors raised inside are translated at this edge."""
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {self.dsn} is not open")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, OSError) as e:  # PoolTimeout, connection lost, shutdown included
            raise _store_error(e, self._where) from e

    # -- tags ----------------------------------------------------------------------------------

    async def register_tags(self, tags: Sequence[TagInfo]) -> None:
        if not tags:
            return
        async with self._conn() as conn:
            cur = await conn.execute(
                """INSERT INTO tags (name, asset, unit, description)
                   SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
                   ON CONFLICT (name) DO UPDATE SET asset = excluded.asset, unit = excluded.unit,
                       description = excluded.description
                   RETURNING name, id""",
                (
                    [t.name for t in tags],
                    [t.asset for t in tags],
                    [t.unit for t in tags],
                    [t.description for t in tags],
                ),
            )
            self._tag_ids.update({name: tid for name, tid in await cur.fetchall()})

    async def tags(self) -> list[TagInfo]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT name, asset, unit, description FROM tags ORDER BY name")
            return [TagInfo(*row) for row in await cur.fetchall()]

    async def _ensure_tags(self, names: list[str]) -> None:
        async with self._conn() as conn:
            await conn.execute(
                """INSERT INTO tags (name, asset) SELECT * FROM unnest(%s::text[], %s::text[])
                   ON CONFLICT (name) DO NOTHING""",
                (names, [asset_of(n) for n in names]),
            )
            cur = await conn.execute("SELECT name, id FROM tags WHERE name = ANY(%s)", (names,))
            self._tag_ids.update({name: tid for name, tid in await cur.fetchall()})

    async def _db_tag_ids(self, batch: SampleBatch) -> I32:
        """Map the batch's process-local tag ids to database ids through a cached lookup array."""
        reg = batch.tags
        lut = self._luts.get(reg)
        if lut is None or len(lut) < len(reg):
            grown = np.full(max(len(reg), 16), -1, dtype=np.int32)
            if lut is not None:
                grown[: len(lut)] = lut
            lut = grown
            self._luts[reg] = lut
        out = lut[batch.tag]
        if len(out) and int(out.min()) < 0:
            missing = np.unique(batch.tag[out < 0])
            names = [reg.name(int(i)) for i in missing]
            unknown = [n for n in names if n not in self._tag_ids]
            if unknown:
                await self._ensure_tags(unknown)
            lut[missing] = [self._tag_ids[n] for n in names]
            out = lut[batch.tag]
        return out

    # -- writes --------------------------------------------------------------------------------

    @staticmethod
    async def _claim(conn: AsyncConnection[Any], batch_id: str, kind: str, rows: int) -> bool:
        cur = await conn.execute(
            "INSERT INTO ingest_batches (id, kind, rows) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (batch_id, kind, rows),
        )
        return cur.rowcount == 1

    async def write_samples(self, batch: SampleBatch, batch_id: str) -> bool:
        (done,) = await self.write_sample_batches([(batch_id, batch)])
        return done

    async def write_sample_batches(self, batches: Sequence[tuple[str, SampleBatch]]) -> list[bool]:
        """One transaction: claim every id in one statement, then one COPY of the rows of the
        batches whose ids were new (and one rollup merge)."""
        items = list(batches)
        if not items:
            return []
        columns = [await self._db_tag_ids(b) if len(b) else np.empty(0, dtype=np.int32) for _, b in items]
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                """INSERT INTO ingest_batches (id, kind, rows)
                   SELECT i, 'samples', r FROM unnest(%s::text[], %s::int4[]) AS u(i, r)
                   ON CONFLICT (id) DO NOTHING RETURNING id""",
                ([i for i, _ in items], [len(b) for _, b in items]),
            )
            claimed = {row[0] for row in await cur.fetchall()}
            done: list[bool] = []
            for batch_id, _ in items:
                done.append(batch_id in claimed)
                claimed.discard(batch_id)  # an id given twice is written once
            parts = [(b, c) for (_, b), c, ok in zip(items, columns, done, strict=True) if ok and len(b)]
            if parts:
                ts = np.concatenate([b.ts for b, _ in parts])
                value = np.concatenate([b.value for b, _ in parts])
                tag_ids = np.concatenate([c for _, c in parts])
                quality = np.concatenate([b.quality for b, _ in parts])
                quality = np.where(np.isnan(value), np.uint8(Quality.BAD), quality)  # NaN is bad, always
                payload = copy_payload(ts, tag_ids, value, quality)
                roll = rollup(ts, tag_ids, value, quality) if self._rollup_table else None
                try:
                    async with conn.transaction(), conn.cursor() as c, c.copy(_COPY_SAMPLES) as copy:
                        await copy.write(payload)
                except psycopg.errors.UniqueViolation:
                    roll = await self._copy_deduplicated(conn, payload)
                if roll is not None:
                    await conn.execute(_ROLLUP_UPSERT, roll)
        await self._maybe_prune()
        return done

    async def _copy_deduplicated(self, conn: AsyncConnection[Any], payload: bytes) -> list[list[Any]] | None:
        """Slow path when some (tag, ts) is already stored or repeated in the batch: the first
        occurrence wins, like an ``INSERT OR IGNORE``; the rollup counts only what went in."""
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS samples_in (
                   ts timestamptz, tag_id integer, value double precision, quality smallint,
                   ord bigserial) ON COMMIT DELETE ROWS"""
        )
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY samples_in (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                await copy.write(payload)
            await cur.execute(
                """INSERT INTO samples (ts, tag_id, value, quality)
                   SELECT DISTINCT ON (tag_id, ts) ts, tag_id, value, quality FROM samples_in
                   ORDER BY tag_id, ts, ord
                   ON CONFLICT (tag_id, ts) DO NOTHING
                   RETURNING (extract(epoch FROM ts) * 1000000)::bigint, tag_id, value, quality"""
            )
            rows = await cur.fetchall()
            await cur.execute("TRUNCATE samples_in")
        if not rows or not self._rollup_table:
            return None
        us, tag, value, quality = zip(*rows, strict=True)
        return rollup(
            np.array(us, dtype=np.int64) * 1000,
            np.array(tag, dtype=np.int32),
            np.array(value, dtype=np.float64),
            np.array(quality, dtype=np.uint8),
        )

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM ingest_batches WHERE committed_at < now() - %s", (_BATCH_IDS_KEPT,)
            )

    async def write_alert_events(
        self,
        events: Sequence[AlertEvent],
        batch_id: str,
        on_shift: dict[str, dict[str, list[str]]] | None = None,
    ) -> bool:
        shifts = on_shift or {}
        async with self._conn() as conn, conn.transaction():
            if not await self._claim(conn, batch_id, "alerts", len(events)):
                return False
            for ev in events:
                aid = ev.alert_id
                # A clear may come first or alone (merged partitions, a lost raise): it inserts the
                # alert with the snapshot. A second clear of a cleared alert changes and journals nothing.
                row = (
                    aid,
                    ev.rule,
                    ev.tag,
                    ev.asset,
                    ev.severity,
                    ev.message,
                    ns_to_dt(ev.raised_at),
                    ev.value,
                    ns_to_dt(ev.at) if ev.kind == "cleared" else None,
                    ev.notify,
                    Jsonb(shifts.get(aid, {})),
                    ev.rule_version,
                )
                cur = await conn.execute(_ALERT_RAISE if ev.kind == "raised" else _ALERT_CLEAR, row)
                if ev.kind == "cleared" and not cur.rowcount:
                    continue
                await conn.execute(_JOURNAL_INSERT, (aid, ns_to_dt(ev.at), ev.kind, "engine", Jsonb({})))
        return True

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return
        rows = [(e.alert_id, ns_to_dt(e.at), e.action, e.actor, Jsonb(e.detail)) for e in entries]
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_JOURNAL_INSERT, rows)

    async def acknowledge(
        self, alert_id: str, by: str, at: int, comment: str | None = None, source: str = "cli"
    ) -> Alert | None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE alerts SET acked_at = %s, acked_by = %s, ack_comment = %s"
                " WHERE id = %s AND acked_at IS NULL",
                (ns_to_dt(at), by, comment, alert_id),
            )
            if cur.rowcount:
                await conn.execute(
                    _JOURNAL_INSERT,
                    (
                        alert_id,
                        ns_to_dt(at),
                        "acknowledged",
                        by,
                        Jsonb({"comment": comment, "source": source}),
                    ),
                )
            return await self._alert(conn, alert_id)

    async def shelve(self, alert_id: str, by: str, at: int, until: int, reason: str) -> Alert | None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE alerts SET shelved_until = %s, shelve_reason = %s WHERE id = %s",
                (ns_to_dt(until), reason, alert_id),
            )
            if cur.rowcount:
                await conn.execute(
                    _JOURNAL_INSERT,
                    (alert_id, ns_to_dt(at), "shelved", by, Jsonb({"until": until, "reason": reason})),
                )
            return await self._alert(conn, alert_id)

    # -- reads ---------------------------------------------------------------------------------

    async def latest(self, tags: Sequence[str] | None = None) -> dict[str, Sample]:
        async with self._conn() as conn:
            cur = await conn.execute(
                """SELECT t.name, s.ts, s.value, s.quality FROM tags t
                   CROSS JOIN LATERAL (SELECT ts, value, quality FROM samples WHERE tag_id = t.id
                                       ORDER BY ts DESC LIMIT 1) s
                   WHERE %(names)s::text[] IS NULL OR t.name = ANY(%(names)s::text[])""",
                {"names": None if tags is None else list(tags)},
            )
            rows = await cur.fetchall()
        return {name: Sample(dt_to_ns(ts), name, value, Quality(q)) for name, ts, value, q in rows}

    async def read_samples(
        self, tags: Sequence[str], start: int, end: int, registry: TagRegistry, *, prior: bool = False
    ) -> SampleBatch:
        names = list(dict.fromkeys(tags))
        rows: list[Any] = []
        async with self._conn() as conn:
            cur = await conn.execute("SELECT id, name FROM tags WHERE name = ANY(%s)", (names,))
            ids = {int(i): n for i, n in await cur.fetchall()}
            if ids:
                params = {"ids": list(ids), "start": ns_to_dt(start), "end": ns_to_dt(end)}
                if prior:
                    cur = await conn.execute(_READ_PRIOR, params)
                    rows += await cur.fetchall()
                cur = await conn.execute(_READ_RANGE, params)
                rows += await cur.fetchall()
        if not rows:
            return SampleBatch.empty(registry)
        lut = {tid: registry.id(name) for tid, name in ids.items()}
        return SampleBatch.make(
            registry,
            [dt_to_ns(r[0]) for r in rows],
            [lut[r[1]] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
        )

    async def series(self, tag: str, start: int, end: int, bucket: int) -> list[Bucket]:
        return await self._series(tag, start, end, bucket, rollup=bucket % _MINUTE_NS == 0)

    async def _series(self, tag: str, start: int, end: int, bucket: int, *, rollup: bool) -> list[Bucket]:
        """``series`` read from ``samples_1m`` (whole minutes only) or from ``samples``."""
        if bucket <= 0 or bucket % 1000:
            raise ValueError(f"bucket must be a positive whole number of microseconds, not {bucket} ns")
        lo, hi = start - start % bucket, -((-end) // bucket) * bucket  # whole buckets overlapping
        if hi <= lo:
            return []
        params = {"tag": tag, "lo": ns_to_dt(lo), "hi": ns_to_dt(hi), "b": bucket // 1000}
        query = _SERIES_ROLLUP if rollup else _SERIES_RAW
        async with self._conn() as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [Bucket(int(b) * 1000, mn, mx, sm / c, last, int(c)) for b, mn, mx, sm, last, c in rows]

    async def alerts(
        self,
        start: int | None = None,
        end: int | None = None,
        *,
        rule: str | None = None,
        asset: str | None = None,
        active_only: bool = False,
        limit: int = 1000,
        before: tuple[int, str] | None = None,
    ) -> list[Alert]:
        where: list[sql.Composable] = [sql.SQL("TRUE")]
        params: list[Any] = []
        if before is not None:
            where.append(sql.SQL("(raised_at < %s OR (raised_at = %s AND id < %s))"))
            params += [ns_to_dt(before[0]), ns_to_dt(before[0]), before[1]]
        if start is not None:
            where.append(sql.SQL("raised_at >= %s"))
            params.append(ns_to_dt(start))
        if end is not None:
            where.append(sql.SQL("raised_at < %s"))
            params.append(ns_to_dt(end))
        if rule is not None:
            where.append(sql.SQL("rule = %s"))
            params.append(rule)
        if asset is not None:
            where.append(sql.SQL("(asset = %s OR starts_with(asset, %s))"))
            params += [asset.rstrip("/"), asset.rstrip("/") + "/"]
        if active_only:
            where.append(sql.SQL("cleared_at IS NULL"))
        query = sql.SQL("SELECT {} FROM alerts WHERE {} ORDER BY raised_at DESC, id DESC LIMIT %s").format(
            sql.SQL(_ALERT_COLUMNS), sql.SQL(" AND ").join(where)
        )
        async with self._conn() as conn:
            cur = await conn.execute(query, [*params, limit])
            return [_alert_from_row(r) for r in await cur.fetchall()]

    async def alert(self, alert_id: str) -> Alert | None:
        async with self._conn() as conn:
            return await self._alert(conn, alert_id)

    async def alerts_by_id(self, alert_ids: Sequence[str]) -> list[Alert]:
        if not alert_ids:
            return []
        query = sql.SQL("SELECT {} FROM alerts WHERE id = ANY(%s)").format(sql.SQL(_ALERT_COLUMNS))
        async with self._conn() as conn:
            cur = await conn.execute(query, (list(alert_ids),))
            return [_alert_from_row(r) for r in await cur.fetchall()]

    @staticmethod
    async def _alert(conn: AsyncConnection[Any], alert_id: str) -> Alert | None:
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM alerts WHERE id = %s").format(sql.SQL(_ALERT_COLUMNS)), (alert_id,)
        )
        row = await cur.fetchone()
        return None if row is None else _alert_from_row(row)

    async def journal(self, alert_id: str) -> list[JournalEntry]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT alert_id, at, action, actor, detail FROM alert_journal"
                " WHERE alert_id = %s ORDER BY at, seq",
                (alert_id,),
            )
            rows = await cur.fetchall()
        return [
            JournalEntry(aid, dt_to_ns(at), action, actor, detail) for aid, at, action, actor, detail in rows
        ]


def _opt_ns(dt: datetime | None) -> int | None:
    return None if dt is None else dt_to_ns(dt)


def _alert_from_row(r: Sequence[Any]) -> Alert:
    return Alert(
        id=r[0],
        rule=r[1],
        tag=r[2],
        asset=r[3],
        severity=r[4],
        message=r[5],
        raised_at=dt_to_ns(r[6]),
        value=r[7],
        cleared_at=_opt_ns(r[8]),
        acked_at=_opt_ns(r[9]),
        acked_by=r[10],
        ack_comment=r[11],
        notify=r[12],
        on_shift=r[13],
        shelved_until=_opt_ns(r[14]),
        shelve_reason=r[15],
        rule_version=r[16],
    )


async def open_pool(
    conninfo: str, size: int, wait: float, name: str, where: str
) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """An autocommit pool with at least one live connection, or StoreUnavailable (no password
    in the message: ``where`` is host:port)."""
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=size,
        open=False,
        timeout=wait,
        kwargs={"autocommit": True},
        check=AsyncConnectionPool.check_connection,
        name=name,
    )
    try:
        await pool.open(wait=True, timeout=wait)
    except psycopg.OperationalError as e:
        await pool.close()
        raise StoreUnavailable(f"PostgreSQL {name} at {where} is unavailable: {_first_line(e)}") from e
    return pool


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# libpq says why a connection attempt failed only in words (no SQLSTATE): these are its and the
# server's (English) reasons that no retry can cure. Anything else (refused, timed out, the
# server starting up or out of connection slots) is an outage, retried.
_REFUSED_FOR_GOOD = re.compile(
    r'authentication failed|role "[^"]*" does not exist|database "[^"]*" does not exist'
    r"|no pg_hba\.conf entry|pg_hba\.conf rejects|permission denied for database"
    r"|is not permitted to log in|no password supplied|SSL was required|does not support SSL"
)
_CONNECT_PREFIX = re.compile(r"^.*\bfailed: (FATAL:\s+)?")


def _store_error(e: BaseException, where: str) -> StoreError:
    """A psycopg or socket error as the store's: StoreUnavailable when retrying may help, else a
    StoreError whose one-line message names ``where`` (host:port, never the password)."""
    line = _first_line(e)
    if isinstance(e, psycopg.OperationalError) and e.sqlstate is None and _REFUSED_FOR_GOOD.search(line):
        return StoreError(f"PostgreSQL at {where} refused the connection: {_CONNECT_PREFIX.sub('', line)}")
    if isinstance(e, psycopg.OperationalError | OSError):
        return StoreUnavailable(f"PostgreSQL at {where} is unavailable: {line}")
    return StoreError(f"PostgreSQL at {where}: {line}")
