"""The embedded SQLite store: the default backend, one file, no server.

Threading: the store owns ONE connection on its own thread (``sqlite_thread.SQLiteThread``),
which serialises all work without a lock and never blocks the event loop. Transactions are
explicit (``isolation_level=None`` + ``BEGIN IMMEDIATE``), so a batch and its batch id commit
together or not at all.

Samples are unique on (tag_id, ts): the first write of a (tag, ts) wins and later copies are
dropped before insert, which is what lets the 1-minute rollup be merged incrementally (min,
max, sum, count, last) without ever counting a sample twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt

from plantpulse.alerts import Alert, AlertEvent, JournalEntry, Severity
from plantpulse.errors import StoreError, StoreUnavailable, denied
from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry, asset_of
from plantpulse.store.base import Bucket, TagInfo
from plantpulse.store.sqlite_thread import SQLiteThread

__all__ = ["MIGRATIONS", "SQLiteStore", "parse_sqlite_url"]

T = TypeVar("T")

NS_PER_MINUTE = 60 * 1_000_000_000

# Versioned migrations: MIGRATIONS[i] brings the schema from version i to i + 1. Append only;
# never edit a step that has shipped.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            asset TEXT NOT NULL,
            unit TEXT,
            description TEXT
        )""",
        # value is NULL for NaN (SQLite stores NaN as NULL); such rows are always quality bad.
        """CREATE TABLE samples (
            ts INTEGER NOT NULL,
            tag_id INTEGER NOT NULL,
            value REAL,
            quality INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX samples_tag_ts ON samples (tag_id, ts)",
        """CREATE TABLE ingest_batches (
            batch_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            committed_at INTEGER NOT NULL
        )""",
        """CREATE TABLE samples_1m (
            tag_id INTEGER NOT NULL,
            minute INTEGER NOT NULL,
            min_value REAL NOT NULL,
            max_value REAL NOT NULL,
            sum_value REAL NOT NULL,
            last_value REAL NOT NULL,
            last_ts INTEGER NOT NULL,
            n_samples INTEGER NOT NULL,
            PRIMARY KEY (tag_id, minute)
        ) WITHOUT ROWID""",
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            tag TEXT NOT NULL,
            asset TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            raised_at INTEGER NOT NULL,
            value REAL,
            cleared_at INTEGER,
            acked_at INTEGER,
            acked_by TEXT,
            ack_comment TEXT,
            notify TEXT,
            on_shift TEXT NOT NULL DEFAULT '{}',
            shelved_until INTEGER,
            shelve_reason TEXT
        )""",
        "CREATE INDEX alerts_raised_at ON alerts (raised_at)",
        "CREATE INDEX alerts_asset ON alerts (asset, raised_at)",
        "CREATE INDEX alerts_rule ON alerts (rule, raised_at)",
        """CREATE TABLE alert_journal (
            seq INTEGER PRIMARY KEY,
            alert_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            UNIQUE (alert_id, at, action, actor)
        )""",
    ],
    [  # rule and KPI changes through approval (docs/approvals.md): the tamper-evident change log
        """CREATE TABLE change_log (
            seq INTEGER PRIMARY KEY,
            change INTEGER NOT NULL,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX change_log_change ON change_log (change, seq)",
        """CREATE TRIGGER change_log_no_update BEFORE UPDATE ON change_log
           BEGIN SELECT RAISE(ABORT, 'change_log is append-only'); END""",
        """CREATE TRIGGER change_log_no_delete BEFORE DELETE ON change_log
           BEGIN SELECT RAISE(ABORT, 'change_log is append-only'); END""",
        "ALTER TABLE alerts ADD COLUMN rule_version INTEGER",
    ],
]

_ALERT_COLUMNS = (
    "id, rule, tag, asset, severity, message, raised_at, value, cleared_at, acked_at, acked_by,"
    " ack_comment, notify, on_shift, shelved_until, shelve_reason, rule_version"
)

_INSERT_SAMPLE = "INSERT INTO samples (ts, tag_id, value, quality) VALUES (?, ?, ?, ?)"

# Merge a batch's per-minute partial aggregates into the rollup. RHS expressions see the old
# row, so the order of assignments does not matter. last_ts never ties: (tag, ts) is unique.
_UPSERT_ROLLUP = """
INSERT INTO samples_1m (tag_id, minute, min_value, max_value, sum_value, last_value, last_ts, n_samples)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tag_id, minute) DO UPDATE SET
    min_value = min(min_value, excluded.min_value),
    max_value = max(max_value, excluded.max_value),
    sum_value = sum_value + excluded.sum_value,
    n_samples = n_samples + excluded.n_samples,
    last_value = CASE WHEN excluded.last_ts > last_ts THEN excluded.last_value ELSE last_value END,
    last_ts = max(last_ts, excluded.last_ts)
"""

_INSERT_ALERT = f"INSERT OR IGNORE INTO alerts ({_ALERT_COLUMNS}) VALUES ({', '.join('?' * 17)})"

_INSERT_JOURNAL = (
    "INSERT OR IGNORE INTO alert_journal (alert_id, at, action, actor, detail) VALUES (?, ?, ?, ?, ?)"
)

# Bucket floor that is right for negative instants too (SQLite's % truncates toward zero).
_SERIES_RAW = """
WITH g AS (
    SELECT ts - ((ts % :b) + :b) % :b AS bstart, min(value) AS mn, max(value) AS mx,
           sum(value) AS sm, count(*) AS n, max(ts) AS lts
    FROM samples
    WHERE tag_id = :tag AND ts >= :start AND ts < :end AND quality != 2
    GROUP BY bstart
)
SELECT g.bstart, g.mn, g.mx, g.sm, g.n, s.value
FROM g JOIN samples AS s ON s.tag_id = :tag AND s.ts = g.lts
ORDER BY g.bstart
"""

_SERIES_ROLLUP = """
WITH g AS (
    SELECT minute - ((minute % :b) + :b) % :b AS bstart, min(min_value) AS mn, max(max_value) AS mx,
           sum(sum_value) AS sm, sum(n_samples) AS n, max(last_ts) AS lts
    FROM samples_1m
    WHERE tag_id = :tag AND minute >= :start AND minute < :end
    GROUP BY bstart
)
SELECT g.bstart, g.mn, g.mx, g.sm, g.n, r.last_value
FROM g JOIN samples_1m AS r
  ON r.tag_id = :tag AND r.minute = g.lts - ((g.lts % :m) + :m) % :m
ORDER BY g.bstart
"""

# Bulk reads of chosen tags: ids come as one JSON array parameter (no SQL built from values).
_READ_RANGE = """
SELECT s.ts, s.tag_id, s.value, s.quality FROM samples AS s
WHERE s.tag_id IN (SELECT value FROM json_each(:ids)) AND s.ts >= :start AND s.ts < :end
ORDER BY s.ts, s.tag_id
"""

_READ_PRIOR = """
SELECT s.ts, s.tag_id, s.value, s.quality FROM json_each(:ids) AS j
JOIN samples AS s ON s.rowid = (
    SELECT rowid FROM samples WHERE tag_id = j.value AND ts < :start ORDER BY ts DESC LIMIT 1
)
ORDER BY s.ts, s.tag_id
"""

_LATEST = """
SELECT t.name, s.ts, s.value, s.quality
FROM tags AS t
JOIN samples AS s ON s.rowid = (
    SELECT rowid FROM samples WHERE tag_id = t.id ORDER BY ts DESC LIMIT 1
)
"""


def parse_sqlite_url(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``, ``sqlite:////abs.db`` -> ``/abs.db``,
    ``sqlite:///:memory:`` -> ``:memory:`` (the SQLAlchemy convention users already know)."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep or not rest.startswith("/") or len(rest) < 2:
        raise StoreError(
            f"invalid SQLite URL {url!r}: use sqlite:///relative.db, sqlite:////abs/path.db or sqlite:///:memory:"
        )
    path = unquote(rest[1:].partition("?")[0])
    if not path:
        raise StoreError(f"invalid SQLite URL {url!r}: no file path")
    return path


def _translate(exc: sqlite3.Error, what: str) -> StoreError:
    """Busy, locked, full or I/O failures may pass (spool and retry); anything else will not."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    transient = name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR"))
    cls = StoreUnavailable if transient else StoreError
    return cls(f"sqlite {what}: {exc}")


def _floor(x: int, step: int) -> int:
    return x - x % step  # Python's % floors, so this is right for negative instants


def _ceil(x: int, step: int) -> int:
    return -_floor(-x, step)


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


class SQLiteStore:
    """The ``Store`` contract on one SQLite file in WAL mode (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = parse_sqlite_url(url)
        self._db = SQLiteThread(self.path, "plantpulse-sqlite")
        self._tag_ids: dict[str, int] = {}  # store tag id by name; ids never change once made

    # ------------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        if not self._db.is_open:
            raise StoreError(f"SQLite store {self.url} is not open")
        try:
            return await self._db.call(fn)
        except sqlite3.Error as exc:
            raise _translate(exc, what) from exc

    async def open(self) -> None:
        """Connect, set WAL + synchronous=NORMAL and apply pending migrations."""
        try:
            await self._db.open(_migrate)
        except sqlite3.Error as exc:
            raise _translate(exc, f"open {self.path}") from exc
        except OSError as exc:  # creating the file or its folder: one line, never a dead writer task
            message, hint = denied("the SQLite store", Path(self.path), exc)
            error = StoreError(message)
            error.hint = hint
            raise error from exc

    async def close(self) -> None:
        """Close the connection (the last WAL connection checkpoints on close)."""
        await self._db.close()
        self._tag_ids.clear()

    # ------------------------------------------------------------------ tags

    async def register_tags(self, tags: Sequence[TagInfo]) -> None:
        rows = [(t.name, t.asset, t.unit, t.description) for t in tags]

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO tags (name, asset, unit, description) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET asset = excluded.asset, unit = excluded.unit,"
                    " description = excluded.description",
                    rows,
                )

        await self._run(work, "register_tags")

    async def tags(self) -> list[TagInfo]:
        def work(conn: sqlite3.Connection) -> list[TagInfo]:
            rows = conn.execute("SELECT name, asset, unit, description FROM tags ORDER BY name").fetchall()
            return [TagInfo(*r) for r in rows]

        return await self._run(work, "tags")

    def _store_ids(self, conn: sqlite3.Connection, names: list[str]) -> npt.NDArray[np.int64]:
        """Store ids for tag names, creating unknown tags (asset from the name). The
        TagRegistry ids in a batch are process-local, so they never reach the file."""
        missing = [n for n in names if n not in self._tag_ids]
        if missing:
            found: dict[str, int] = {}
            with _transaction(conn):
                conn.executemany(
                    "INSERT OR IGNORE INTO tags (name, asset) VALUES (?, ?)",
                    [(n, asset_of(n)) for n in missing],
                )
                for n in missing:
                    found[n] = int(conn.execute("SELECT id FROM tags WHERE name = ?", (n,)).fetchone()[0])
            self._tag_ids.update(found)  # only once committed: a rollback must not leave stale ids
        return np.array([self._tag_ids[n] for n in names], dtype=np.int64)

    def _store_tags(self, conn: sqlite3.Connection, batch: SampleBatch) -> npt.NDArray[np.int64]:
        """The batch's tag column as store ids (one lookup per distinct tag, not per row)."""
        if not len(batch):
            return np.empty(0, dtype=np.int64)
        uniq, inverse = np.unique(batch.tag, return_inverse=True)
        lut = self._store_ids(conn, [batch.tags.name(int(i)) for i in uniq])
        return lut[inverse.reshape(-1)]

    def _tag_id(self, conn: sqlite3.Connection, name: str) -> int | None:
        tid = self._tag_ids.get(name)
        if tid is None:
            row = conn.execute("SELECT id FROM tags WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            tid = self._tag_ids[name] = int(row[0])
        return tid

    # ------------------------------------------------------------------ samples

    async def write_samples(self, batch: SampleBatch, batch_id: str) -> bool:
        (done,) = await self.write_sample_batches([(batch_id, batch)])
        return done

    async def write_sample_batches(self, batches: Sequence[tuple[str, SampleBatch]]) -> list[bool]:
        items = list(batches)

        def work(conn: sqlite3.Connection) -> list[bool]:
            return self._write_batches(conn, items)

        return await self._run(work, "write_samples")

    def _write_batches(self, conn: sqlite3.Connection, items: list[tuple[str, SampleBatch]]) -> list[bool]:
        """One transaction: the batch ids not committed yet claim their rows, which go in
        together (first write of a (tag, ts) wins, within and across the batches)."""
        # store tag ids first (their own transaction, cached once committed)
        columns = [self._store_tags(conn, b) for _, b in items]
        with _transaction(conn):
            done: list[bool] = []
            new: list[tuple[SampleBatch, npt.NDArray[np.int64]]] = []
            seen: set[str] = set()
            for (batch_id, batch), column in zip(items, columns, strict=True):
                known = (
                    batch_id in seen
                    or conn.execute("SELECT 1 FROM ingest_batches WHERE batch_id = ?", (batch_id,)).fetchone()
                )
                done.append(not known)
                if known:
                    continue
                seen.add(batch_id)
                new.append((batch, column))
                # committed_at is wall-clock, for operators only; never event time.
                conn.execute(
                    "INSERT INTO ingest_batches (batch_id, kind, committed_at) VALUES (?, 'samples', ?)",
                    (batch_id, time.time_ns()),
                )
            if new:
                self._insert_rows(conn, new)
        return done

    def _insert_rows(
        self, conn: sqlite3.Connection, batches: list[tuple[SampleBatch, npt.NDArray[np.int64]]]
    ) -> None:
        """Rows of ``batches`` (each with its tag column as store ids), in order, into
        ``samples`` and the rollup, inside the caller's transaction; a (tag, ts) already stored
        or repeated keeps its first write."""
        parts = [b for b, _ in batches if len(b)]
        if not parts:
            return
        tag = np.concatenate([c for b, c in batches if len(b)])
        ts = np.concatenate([b.ts for b in parts]).astype(np.int64, copy=False)
        value = np.concatenate([b.value for b in parts]).astype(np.float64, copy=False)
        quality = np.concatenate([b.quality for b in parts])
        quality = np.where(np.isnan(value), np.uint8(Quality.BAD), quality).astype(np.int64)
        n = len(ts)

        # Sort by (tag, ts, arrival): groups tags for the rollup, puts index inserts in order and
        # makes in-batch duplicates adjacent with the first arrival first.
        order = np.lexsort((np.arange(n), ts, tag))
        tag, ts, value, quality = tag[order], ts[order], value[order], quality[order]
        keep = np.ones(n, dtype=bool)
        if n > 1:
            keep[1:] = (tag[1:] != tag[:-1]) | (ts[1:] != ts[:-1])

        _drop_stored(conn, tag, ts, keep)
        tag, ts, value, quality = tag[keep], ts[keep], value[keep], quality[keep]
        conn.executemany(
            _INSERT_SAMPLE,
            zip(ts.tolist(), tag.tolist(), value.tolist(), quality.tolist(), strict=True),
        )
        conn.executemany(_UPSERT_ROLLUP, _rollup_rows(tag, ts, value, quality))

    async def latest(self, tags: Sequence[str] | None = None) -> dict[str, Sample]:
        wanted = None if tags is None else list(tags)

        def work(conn: sqlite3.Connection) -> dict[str, Sample]:
            if wanted is None:
                rows = conn.execute(_LATEST).fetchall()
            else:
                rows = []
                for name in dict.fromkeys(wanted):
                    rows += conn.execute(_LATEST + " WHERE t.name = ?", (name,)).fetchall()
            return {name: Sample(int(ts), name, _num(v), Quality(int(q))) for name, ts, v, q in rows}

        return await self._run(work, "latest")

    async def read_samples(
        self, tags: Sequence[str], start: int, end: int, registry: TagRegistry, *, prior: bool = False
    ) -> SampleBatch:
        names = list(dict.fromkeys(tags))

        def work(conn: sqlite3.Connection) -> tuple[list[Any], dict[int, str]]:
            ids = {tid: n for n in names if (tid := self._tag_id(conn, n)) is not None}
            rows: list[Any] = []
            if ids:
                params = {"ids": json.dumps(list(ids)), "start": start, "end": end}
                if prior:
                    rows += conn.execute(_READ_PRIOR, params).fetchall()
                rows += conn.execute(_READ_RANGE, params).fetchall()
            return rows, ids

        rows, ids = await self._run(work, "read_samples")
        if not rows:
            return SampleBatch.empty(registry)
        lut = {tid: registry.id(name) for tid, name in ids.items()}
        ts, tid, value, quality = zip(*rows, strict=True)
        return SampleBatch.make(registry, ts, [lut[t] for t in tid], [_num(v) for v in value], quality)

    async def series(self, tag: str, start: int, end: int, bucket: int) -> list[Bucket]:
        if bucket <= 0:
            raise ValueError(f"bucket must be a positive number of ns, not {bucket}")
        lo, hi = _floor(start, bucket), _ceil(end, bucket)

        def work(conn: sqlite3.Connection) -> list[Bucket]:
            tid = self._tag_id(conn, tag)
            if tid is None or hi <= lo:
                return []
            params = {"b": bucket, "tag": tid, "start": lo, "end": hi, "m": NS_PER_MINUTE}
            sql = _SERIES_ROLLUP if bucket % NS_PER_MINUTE == 0 else _SERIES_RAW
            return [
                Bucket(
                    start=int(b),
                    min=float(mn),
                    max=float(mx),
                    avg=float(sm) / int(cnt),
                    last=float(last),
                    count=int(cnt),
                )
                for b, mn, mx, sm, cnt, last in conn.execute(sql, params)
            ]

        return await self._run(work, "series")

    # ------------------------------------------------------------------ alerts

    async def write_alert_events(
        self,
        events: Sequence[AlertEvent],
        batch_id: str,
        on_shift: dict[str, dict[str, list[str]]] | None = None,
    ) -> bool:
        evs = list(events)
        shifts = dict(on_shift or {})

        def work(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                if conn.execute("SELECT 1 FROM ingest_batches WHERE batch_id = ?", (batch_id,)).fetchone():
                    return False
                for ev in evs:
                    aid = ev.alert_id
                    # Also for "cleared": raise and clear may arrive together, in any order, or
                    # the raise may be lost; the on_shift snapshot is keyed by id either way.
                    inserted = conn.execute(
                        _INSERT_ALERT, _alert_row(Alert.from_event(ev, shifts.get(aid)))
                    ).rowcount
                    if ev.kind == "cleared" and not inserted:
                        # A second clear of a cleared alert changes nothing, so journals nothing.
                        inserted = conn.execute(
                            "UPDATE alerts SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
                            (ev.at, aid),
                        ).rowcount
                        if not inserted:
                            continue
                    conn.execute(_INSERT_JOURNAL, (aid, ev.at, ev.kind, "engine", "{}"))
                conn.execute(
                    "INSERT INTO ingest_batches (batch_id, kind, committed_at) VALUES (?, 'alerts', ?)",
                    (batch_id, time.time_ns()),
                )
            return True

        return await self._run(work, "write_alert_events")

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None:
        rows = [(e.alert_id, e.at, e.action, e.actor, _json(e.detail)) for e in entries]

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(_INSERT_JOURNAL, rows)

        await self._run(work, "append_journal")

    async def acknowledge(
        self, alert_id: str, by: str, at: int, comment: str | None = None, source: str = "cli"
    ) -> Alert | None:
        def work(conn: sqlite3.Connection) -> Alert | None:
            with _transaction(conn):
                cur = conn.execute(
                    "UPDATE alerts SET acked_at = ?, acked_by = ?, ack_comment = ?"
                    " WHERE id = ? AND acked_at IS NULL",
                    (at, by, comment, alert_id),
                )
                if cur.rowcount:
                    detail = _json({"source": source, "comment": comment})
                    conn.execute(_INSERT_JOURNAL, (alert_id, at, "acknowledged", by, detail))
                return _get_alert(conn, alert_id)

        return await self._run(work, "acknowledge")

    async def shelve(self, alert_id: str, by: str, at: int, until: int, reason: str) -> Alert | None:
        def work(conn: sqlite3.Connection) -> Alert | None:
            with _transaction(conn):
                cur = conn.execute(
                    "UPDATE alerts SET shelved_until = ?, shelve_reason = ? WHERE id = ?",
                    (until, reason, alert_id),
                )
                if not cur.rowcount:
                    return None
                detail = _json({"until": until, "reason": reason})
                conn.execute(_INSERT_JOURNAL, (alert_id, at, "shelved", by, detail))
                return _get_alert(conn, alert_id)

        return await self._run(work, "shelve")

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
        where: list[str] = []
        params: list[Any] = []
        if before is not None:
            where.append("(raised_at < ? OR (raised_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        if start is not None:
            where.append("raised_at >= ?")
            params.append(start)
        if end is not None:
            where.append("raised_at < ?")
            params.append(end)
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if asset is not None:
            # Subtree by byte range, not LIKE: LIKE is case-insensitive and treats % and _ as
            # wildcards. Every 'a/...' sorts in ['a/', 'a0') since '0' follows '/'.
            a = asset.rstrip("/")
            where.append("(asset = ? OR (asset >= ? AND asset < ?))")
            params += [a, a + "/", a + "0"]
        if active_only:
            where.append("cleared_at IS NULL")
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_at DESC, id DESC LIMIT ?"
        params.append(limit)

        def work(conn: sqlite3.Connection) -> list[Alert]:
            return [_alert_from_row(r) for r in conn.execute(sql, params)]

        return await self._run(work, "alerts")

    async def alert(self, alert_id: str) -> Alert | None:
        return await self._run(lambda conn: _get_alert(conn, alert_id), "alert")

    async def alerts_by_id(self, alert_ids: Sequence[str]) -> list[Alert]:
        ids = json.dumps(list(alert_ids))
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id IN (SELECT value FROM json_each(?))"

        def work(conn: sqlite3.Connection) -> list[Alert]:
            return [_alert_from_row(r) for r in conn.execute(sql, (ids,))]

        return await self._run(work, "alerts_by_id") if alert_ids else []

    async def journal(self, alert_id: str) -> list[JournalEntry]:
        def work(conn: sqlite3.Connection) -> list[JournalEntry]:
            rows = conn.execute(
                "SELECT alert_id, at, action, actor, detail FROM alert_journal"
                " WHERE alert_id = ? ORDER BY at, seq",
                (alert_id,),
            ).fetchall()
            return [JournalEntry(a, int(at), act, actor, json.loads(d)) for a, at, act, actor, d in rows]

        return await self._run(work, "journal")


# ---------------------------------------------------------------------- helpers


class _transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; takes the write lock up front so a check-then-insert
    (batch id, stored duplicates) cannot race another process. Rolls back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.rollback()


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the missing MIGRATIONS steps, each in its own transaction with its version bump."""
    with _transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    if current > len(MIGRATIONS):
        raise StoreError(
            f"database schema version {current} is newer than this plantpulse knows"
            f" ({len(MIGRATIONS)}); upgrade plantpulse"
        )
    for version in range(current, len(MIGRATIONS)):
        with _transaction(conn):
            # Re-check under the write lock: another process may have migrated meanwhile.
            now = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
            if now > version:
                continue
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))


def _drop_stored(
    conn: sqlite3.Connection,
    tag: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
) -> None:
    """Clear ``keep`` where (tag, ts) is already stored; rows are sorted by (tag, ts). One index
    range probe per tag, which returns nothing for fresh data."""
    bounds = np.flatnonzero(np.diff(tag)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(tag)]))
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = conn.execute(
            "SELECT ts FROM samples WHERE tag_id = ? AND ts BETWEEN ? AND ?",
            (int(tag[s]), int(ts[s]), int(ts[e - 1])),
        ).fetchall()
        if rows:
            stored = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            keep[s:e] &= ~np.isin(ts[s:e], stored)


def _rollup_rows(
    tag: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int64],
) -> zip[tuple[Any, ...]]:
    """Per (tag, minute) partial aggregates of the non-bad rows, in numpy. Input is sorted by
    (tag, ts), hence also by (tag, minute), and "last" is the final row of each group."""
    good = quality != Quality.BAD
    tag, ts, value = tag[good], ts[good], value[good]
    minute = ts - ts % NS_PER_MINUTE
    if len(tag) == 0:
        return zip()
    change = np.flatnonzero((tag[1:] != tag[:-1]) | (minute[1:] != minute[:-1])) + 1
    starts = np.concatenate(([0], change))
    lasts = np.concatenate((change, [len(tag)])) - 1
    return zip(
        tag[starts].tolist(),
        minute[starts].tolist(),
        np.minimum.reduceat(value, starts).tolist(),
        np.maximum.reduceat(value, starts).tolist(),
        np.add.reduceat(value, starts).tolist(),
        value[lasts].tolist(),
        ts[lasts].tolist(),
        (lasts - starts + 1).tolist(),
        strict=True,
    )


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def _alert_row(a: Alert) -> tuple[Any, ...]:
    return (
        a.id, a.rule, a.tag, a.asset, a.severity, a.message, a.raised_at, a.value, a.cleared_at, a.acked_at,
        a.acked_by, a.ack_comment, a.notify, _json(a.on_shift), a.shelved_until, a.shelve_reason,
        a.rule_version,
    )  # fmt: skip


def _alert_from_row(r: Sequence[Any]) -> Alert:
    return Alert(
        id=r[0],
        rule=r[1],
        tag=r[2],
        asset=r[3],
        severity=cast(Severity, r[4]),
        message=r[5],
        raised_at=int(r[6]),
        value=_num(r[7]),
        cleared_at=r[8],
        acked_at=r[9],
        acked_by=r[10],
        ack_comment=r[11],
        notify=r[12],
        on_shift=json.loads(r[13]),
        shelved_until=r[14],
        shelve_reason=r[15],
        rule_version=r[16],
    )


def _get_alert(conn: sqlite3.Connection, alert_id: str) -> Alert | None:
    row = conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return None if row is None else _alert_from_row(row)
