"""The notifier outbox (plantpulse.notifier.outbox) in the SQLite store's file.

Own tables (notify_state, notify_meta, outbox, deliveries, used_nonces), created idempotently,
and its own connection in WAL mode on a private single-thread executor, like SQLiteStore: the
two connections share the file and SQLite serialises their writes (busy_timeout covers the
short waits). Every method is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar, cast

from plantpulse.errors import StoreError
from plantpulse.notifier.outbox import Change, Delivery, Loaded, OutboxRow, Saved
from plantpulse.store.sqlite import parse_sqlite_url
from plantpulse.store.sqlite_thread import SQLiteThread

T = TypeVar("T")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS notify_state (
        alert_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        active INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS notify_state_active ON notify_state (active) WHERE active = 1",
    "CREATE TABLE IF NOT EXISTS notify_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        notify_type TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        msg_key TEXT NOT NULL,
        meta TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_open ON outbox (status, channel, id)",
    "CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert_id, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at INTEGER NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        response TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_row ON deliveries (outbox_id, id)",
    """CREATE TABLE IF NOT EXISTS used_nonces (
        nonce TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        person TEXT NOT NULL,
        at INTEGER NOT NULL
    )""",
]

_ROW_COLUMNS = (
    "alert_id, step, kind, recipient, channel, title, body, notify_type, created_at, status, msg_key, meta,"
    " id, attempts"
)
_INSERT_ROW = (
    "INSERT INTO outbox (alert_id, step, kind, recipient, channel, title, body, notify_type, created_at,"
    " status, msg_key, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        alert_id=r[0], step=int(r[1]), kind=r[2], recipient=r[3], channel=r[4], title=r[5], body=r[6],
        notify_type=r[7], created_at=int(r[8]), status=r[9], msg_key=r[10], meta=json.loads(r[11]),
        id=int(r[12]), attempts=int(r[13]),
    )  # fmt: skip


class SQLiteOutbox:
    """``Outbox`` on the SQLite store's file (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = parse_sqlite_url(url)
        self._db = SQLiteThread(self.path, "plantpulse-outbox")

    async def _run(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        """``fn`` in one immediate transaction (the store may write the same file meanwhile)."""
        if not self._db.is_open:
            raise StoreError(f"SQLite outbox {self.url} is not open")

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            out = fn(conn)
            conn.execute("COMMIT")
            return out

        try:
            return await self._db.call(transaction)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite outbox {what}: {exc}") from exc

    async def open(self) -> None:
        def schema(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")

        try:
            await self._db.open(schema)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite outbox open {self.path}: {exc}") from exc

    async def close(self) -> None:
        await self._db.close()

    async def save(self, change: Change) -> Saved:
        def work(conn: sqlite3.Connection) -> Saved:
            cancelled: list[int] = []
            for alert_id in change.cancel:
                cur = conn.execute(
                    "UPDATE outbox SET status = 'cancelled' WHERE alert_id = ?"
                    " AND status IN ('pending', 'sending', 'held') RETURNING id",
                    (alert_id,),
                )
                cancelled.extend(int(r[0]) for r in cur.fetchall())
            conn.executemany(
                "INSERT INTO notify_state (alert_id, state, active) VALUES (?, ?, ?)"
                " ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, active = excluded.active",
                [(aid, _json(st), int(active)) for aid, (st, active) in change.states.items()],
            )
            conn.executemany(
                "UPDATE outbox SET status = 'digested' WHERE id = ? AND status = 'held'",
                [(i,) for i in change.digested],
            )
            rows = []
            for r in change.rows:
                (rid,) = conn.execute(
                    _INSERT_ROW,
                    (r.alert_id, r.step, r.kind, r.recipient, r.channel, r.title, r.body, r.notify_type,
                     r.created_at, r.status, r.msg_key, _json(dict(r.meta))),
                ).fetchone()  # fmt: skip
                rows.append(replace(r, id=int(rid)))
            if change.flood is not None:
                conn.execute(
                    "INSERT INTO notify_meta (key, value) VALUES ('flood', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_json(dict(change.flood)),),
                )
            return Saved(rows, cancelled)

        return await self._run(work, "save")

    async def load(self) -> Loaded:
        def work(conn: sqlite3.Connection) -> Loaded:
            conn.execute("UPDATE outbox SET status = 'pending' WHERE status = 'sending'")
            states = {
                aid: json.loads(st)
                for aid, st in conn.execute("SELECT alert_id, state FROM notify_state WHERE active = 1")
            }
            row = conn.execute("SELECT value FROM notify_meta WHERE key = 'flood'").fetchone()
            return Loaded(states, json.loads(row[0]) if row else None)

        return await self._run(work, "load")

    async def known(self, alert_ids: Collection[str]) -> set[str]:
        ids = list(alert_ids)

        def work(conn: sqlite3.Connection) -> set[str]:
            out: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT alert_id FROM notify_state WHERE alert_id IN ({marks})"
                out.update(r[0] for r in conn.execute(sql, chunk))
            return out

        return await self._run(work, "known") if ids else set()

    async def claim(self, channel: str, limit: int) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            rows = [
                _row(r)
                for r in conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status = 'pending' AND channel = ?"
                    " ORDER BY id LIMIT ?",
                    (channel, limit),
                )
            ]
            conn.executemany("UPDATE outbox SET status = 'sending' WHERE id = ?", [(r.id,) for r in rows])
            return [replace(r, status="sending") for r in rows]

        return await self._run(work, "claim") if limit > 0 else []

    async def record(self, delivery: Delivery, final: Literal["sent", "failed"] | None) -> None:
        d = delivery

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO deliveries (outbox_id, attempt, at, channel, recipient, status, response)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (d.outbox_id, d.attempt, d.at, d.channel, d.recipient, d.status, d.response),
            )
            conn.execute(
                "UPDATE outbox SET attempts = max(attempts, ?),"
                " status = CASE WHEN ? IS NOT NULL AND status = 'sending' THEN ? ELSE status END"
                " WHERE id = ?",
                (d.attempt, final, final, d.outbox_id),
            )

        await self._run(work, "record")

    async def held(self, recipient: str) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            return [
                _row(r)
                for r in conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status = 'held' AND recipient = ? ORDER BY id",
                    (recipient,),
                )
            ]

        return await self._run(work, "held")

    async def rows(self, alert_id: str | None = None) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            if alert_id is None:
                cur = conn.execute(f"SELECT {_ROW_COLUMNS} FROM outbox ORDER BY id")
            else:
                sql = f"SELECT {_ROW_COLUMNS} FROM outbox WHERE alert_id = ? ORDER BY id"
                cur = conn.execute(sql, (alert_id,))
            return [_row(r) for r in cur]

        return await self._run(work, "rows")

    async def deliveries(self, outbox_id: int | None = None) -> list[Delivery]:
        sql = "SELECT outbox_id, attempt, at, channel, recipient, status, response FROM deliveries"

        def work(conn: sqlite3.Connection) -> list[Delivery]:
            cur = (
                conn.execute(sql + " ORDER BY id")
                if outbox_id is None
                else conn.execute(sql + " WHERE outbox_id = ? ORDER BY id", (outbox_id,))
            )
            return [
                Delivery(int(o), int(a), int(at), ch, rc, cast(Literal["ok", "error"], st), resp)
                for o, a, at, ch, rc, st, resp in cur
            ]

        return await self._run(work, "deliveries")

    async def use_nonce(self, nonce: str, alert_id: str, person: str, at: int) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO used_nonces (nonce, alert_id, person, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (nonce) DO NOTHING",
                (nonce, alert_id, person, at),
            )
            return cur.rowcount == 1

        return await self._run(work, "use_nonce")

    async def nonce_used(self, nonce: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM used_nonces WHERE nonce = ?", (nonce,)).fetchone() is not None

        return await self._run(work, "nonce_used")


__all__ = ["SCHEMA", "SQLiteOutbox"]
