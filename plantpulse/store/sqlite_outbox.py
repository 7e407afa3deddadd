"""The notifier outbox (plantpulse.notifier.outbox) in its own local SQLite file.

Where: ``plant.store.state_dir / "outbox.db"`` (next to the spool), whatever the sample store is,
so nothing the notifier does waits for the database. WAL mode, one connection on a private
single-thread executor; every method is one ``BEGIN IMMEDIATE`` transaction. ``plantpulse
ack`` may open the same file from another process; SQLite serialises the writers.

Choices, and why:
- Opening waits for another process's lock (a previous run still dying after SIGKILL, a CLI
  acknowledging) up to ``lock_timeout`` instead of failing with "database is locked": a
  supervisor restarting the service quickly must not see a crash loop.
- JSON columns are written ASCII-only with non-finite floats as strings ("NaN", "Infinity"),
  so no value an alert can carry makes a write fail; ``float()`` reads them back.
- The directory is created 0700 and the file 0600: rows hold working acknowledge links.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeVar, cast

from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError
from plantpulse.notifier.outbox import Ack, Change, Delivery, Escalation, Loaded, OutboxRow, Saved
from plantpulse.store.sqlite_outbox_schema import (
    ACK_COLUMNS,
    IN_JSON,
    INSERT_ROW,
    ROW_COLUMNS,
    SCHEMA,
    ack_of,
    row_of,
    to_json,
)
from plantpulse.store.sqlite_thread import SQLiteThread

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTBOX_FILE = "outbox.db"


def outbox_path(store: StoreConfig) -> Path:
    """Where a plant's outbox lives: its local state directory, next to the spool."""
    return store.state_dir / OUTBOX_FILE


def _locked(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in ("locked", "busy")
    )


class SQLiteOutbox:
    """``Outbox`` in a local SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._db = SQLiteThread(str(self.path), "plantpulse-outbox")

    @classmethod
    def for_store(cls, store: StoreConfig) -> SQLiteOutbox:
        return cls(outbox_path(store))

    async def _run(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        """``fn`` in one immediate transaction (``plantpulse ack`` may write meanwhile)."""
        if not self._db.is_open:
            raise StoreError(f"outbox {self.path} is not open")

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            out = fn(conn)
            conn.execute("COMMIT")
            return out

        try:
            return await self._db.call(transaction)
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {what}: {exc}") from exc

    async def open(self) -> None:
        def schema(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")

        def create() -> None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))

        deadline = time.monotonic() + self.lock_timeout
        waited = False
        while True:
            try:
                await asyncio.to_thread(create)
                await self._db.open(schema)
            except sqlite3.Error as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise StoreError(f"outbox open {self.path}: {exc}") from exc
                if not waited:
                    log.warning("outbox %s is locked by another process; waiting up to %.0f s",
                                self.path, self.lock_timeout)  # fmt: skip
                    waited = True
                await asyncio.sleep(0.2)  # polling a lock held by another process, not synchronisation
            except OSError as exc:
                raise StoreError(f"outbox open {self.path}: {exc}") from exc
            else:
                if waited:
                    log.info("outbox %s: lock obtained", self.path)
                return

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
                "INSERT INTO notify_state (alert_id, state, info, active, error) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, info = excluded.info,"
                " active = excluded.active, error = excluded.error",
                [
                    (aid, to_json(e.state), to_json(e.info), int(e.active), e.error)
                    for aid, e in change.states.items()
                ],
            )
            conn.executemany(
                "UPDATE outbox SET status = 'digested' WHERE id = ? AND status = 'held'",
                [(i,) for i in change.digested],
            )
            rows = []
            for r in change.rows:
                (rid,) = conn.execute(
                    INSERT_ROW,
                    (r.alert_id, r.step, r.kind, r.recipient, r.channel, r.title, r.body, r.notify_type,
                     r.created_at, r.status, r.msg_key, to_json(dict(r.meta))),
                ).fetchone()  # fmt: skip
                rows.append(replace(r, id=int(rid)))
            if change.flood is not None:
                conn.execute(
                    "INSERT INTO notify_meta (key, value) VALUES ('flood', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (to_json(dict(change.flood)),),
                )
            return Saved(rows, cancelled)

        return await self._run(work, "save")

    async def load(self) -> Loaded:
        def work(conn: sqlite3.Connection) -> Loaded:
            conn.execute("UPDATE outbox SET status = 'pending' WHERE status = 'sending'")
            states = {
                aid: Escalation(json.loads(st), json.loads(info), True)
                for aid, st, info in conn.execute(
                    "SELECT alert_id, state, info FROM notify_state WHERE active = 1"
                )
            }
            row = conn.execute("SELECT value FROM notify_meta WHERE key = 'flood'").fetchone()
            acks = [
                ack_of(r)
                for r in conn.execute(
                    f"SELECT {ACK_COLUMNS} FROM acks WHERE alert_id IN"
                    " (SELECT alert_id FROM notify_state WHERE active = 1) ORDER BY seq"
                )
            ]
            (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM acks").fetchone()
            return Loaded(states, json.loads(row[0]) if row else None, acks, int(seq))

        return await self._run(work, "load")

    async def known(self, alert_ids: Collection[str]) -> set[str]:
        ids = json.dumps(list(alert_ids))

        def work(conn: sqlite3.Connection) -> set[str]:
            sql = f"SELECT alert_id FROM notify_state WHERE alert_id IN {IN_JSON}"
            return {r[0] for r in conn.execute(sql, (ids,))}

        return await self._run(work, "known") if alert_ids else set()

    async def escalation(self, alert_id: str) -> Escalation | None:
        def work(conn: sqlite3.Connection) -> Escalation | None:
            r = conn.execute(
                "SELECT state, info, active, error FROM notify_state WHERE alert_id = ?", (alert_id,)
            ).fetchone()
            return None if r is None else Escalation(json.loads(r[0]), json.loads(r[1]), bool(r[2]), r[3])

        return await self._run(work, "escalation")

    async def claim(self, channel: str, limit: int) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            rows = [
                row_of(r)
                for r in conn.execute(
                    f"SELECT {ROW_COLUMNS} FROM outbox WHERE status = 'pending' AND channel = ?"
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
                row_of(r)
                for r in conn.execute(
                    f"SELECT {ROW_COLUMNS} FROM outbox WHERE status = 'held' AND recipient = ? ORDER BY id",
                    (recipient,),
                )
            ]

        return await self._run(work, "held")

    async def rows(self, alert_id: str | None = None) -> list[OutboxRow]:
        def work(conn: sqlite3.Connection) -> list[OutboxRow]:
            if alert_id is None:
                cur = conn.execute(f"SELECT {ROW_COLUMNS} FROM outbox ORDER BY id")
            else:
                sql = f"SELECT {ROW_COLUMNS} FROM outbox WHERE alert_id = ? ORDER BY id"
                cur = conn.execute(sql, (alert_id,))
            return [row_of(r) for r in cur]

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

    async def acknowledge(self, ack: Ack, nonce: str | None = None) -> Ack | None:
        a = ack

        def work(conn: sqlite3.Connection) -> Ack | None:
            if nonce is not None:
                spent = conn.execute(
                    "INSERT INTO used_nonces (nonce, alert_id, person, at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (nonce) DO NOTHING",
                    (nonce, a.alert_id, a.by, a.at),
                ).rowcount
                if not spent:
                    return None
            conn.execute(
                "INSERT INTO acks (alert_id, acked_by, at, comment, source) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id) DO NOTHING",
                (a.alert_id, a.by, a.at, a.comment, a.source),
            )
            r = conn.execute(f"SELECT {ACK_COLUMNS} FROM acks WHERE alert_id = ?", (a.alert_id,)).fetchone()
            return ack_of(r)

        return await self._run(work, "acknowledge")

    async def acks_since(self, seq: int) -> list[Ack]:
        def work(conn: sqlite3.Connection) -> list[Ack]:
            sql = f"SELECT {ACK_COLUMNS} FROM acks WHERE seq > ? ORDER BY seq"
            return [ack_of(r) for r in conn.execute(sql, (seq,))]

        return await self._run(work, "acks_since")

    async def unforwarded(self, limit: int = 100) -> list[Ack]:
        def work(conn: sqlite3.Connection) -> list[Ack]:
            sql = f"SELECT {ACK_COLUMNS} FROM acks WHERE forwarded = 0 ORDER BY seq LIMIT ?"
            return [ack_of(r) for r in conn.execute(sql, (limit,))]

        return await self._run(work, "unforwarded")

    async def forwarded(self, seq: int, *, drop: bool = False) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if drop:
                conn.execute("DELETE FROM acks WHERE seq = ?", (seq,))
            else:
                conn.execute("UPDATE acks SET forwarded = 1 WHERE seq = ?", (seq,))

        await self._run(work, "forwarded")

    async def nonce_used(self, nonce: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM used_nonces WHERE nonce = ?", (nonce,)).fetchone() is not None

        return await self._run(work, "nonce_used")


__all__ = ["OUTBOX_FILE", "SCHEMA", "SQLiteOutbox", "outbox_path"]
