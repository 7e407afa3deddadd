"""The notifier outbox (plantpulse.notifier.outbox) on PostgreSQL, psycopg 3 async.

Own tables (notify_state, notify_meta, outbox, deliveries, used_nonces), created idempotently
in the connection's schema, and its own small pool. Values always travel as parameters; every
method is one transaction. ``claim`` uses ``FOR UPDATE SKIP LOCKED`` so two notifier processes
on one database would never claim the same row. psycopg errors become StoreError /
StoreUnavailable here, with host:port and never the password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Literal, cast

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.notifier.outbox import Change, Delivery, Loaded, OutboxRow, Saved
from plantpulse.store.postgres import _expand_env, _host_port, open_pool

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS notify_state (
        alert_id text PRIMARY KEY,
        state jsonb NOT NULL,
        active boolean NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS notify_state_active ON notify_state (alert_id) WHERE active",
    "CREATE TABLE IF NOT EXISTS notify_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id bigserial PRIMARY KEY,
        alert_id text NOT NULL,
        step integer NOT NULL,
        kind text NOT NULL,
        recipient text NOT NULL,
        channel text NOT NULL,
        title text NOT NULL,
        body text NOT NULL,
        notify_type text NOT NULL,
        created_at bigint NOT NULL,
        status text NOT NULL,
        msg_key text NOT NULL,
        meta jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_open ON outbox (status, channel, id)",
    "CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert_id, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id bigserial PRIMARY KEY,
        outbox_id bigint NOT NULL,
        attempt integer NOT NULL,
        at bigint NOT NULL,
        channel text NOT NULL,
        recipient text NOT NULL,
        status text NOT NULL,
        response text NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_row ON deliveries (outbox_id, id)",
    """CREATE TABLE IF NOT EXISTS used_nonces (
        nonce text PRIMARY KEY,
        alert_id text NOT NULL,
        person text NOT NULL,
        at bigint NOT NULL
    )""",
]

_ROW_COLUMNS = (
    "alert_id, step, kind, recipient, channel, title, body, notify_type, created_at, status, msg_key, meta,"
    " id, attempts"
)
_INSERT_ROW = (
    "INSERT INTO outbox (alert_id, step, kind, recipient, channel, title, body, notify_type, created_at,"
    " status, msg_key, meta) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_LOCK_KEY = 0x706C6E74  # advisory lock serialising schema creation between processes


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        alert_id=r[0], step=int(r[1]), kind=r[2], recipient=r[3], channel=r[4], title=r[5], body=r[6],
        notify_type=r[7], created_at=int(r[8]), status=r[9], msg_key=r[10], meta=dict(r[11]),
        id=int(r[12]), attempts=int(r[13]),
    )  # fmt: skip


class PostgresOutbox:
    """``Outbox`` on PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, pool_size: int = 2, timeout: float = 5.0) -> None:
        self._conninfo = make_conninfo(
            _expand_env(url), connect_timeout=max(2, round(timeout)), application_name="plantpulse-notifier"
        )
        self._where = _host_port(self._conninfo)
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._pool is None:
            raise StoreError(f"PostgreSQL outbox at {self._where} is not open")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.OperationalError as e:
            raise StoreUnavailable(f"PostgreSQL outbox at {self._where} is unavailable: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL outbox at {self._where}: {e}") from e

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await open_pool(
            self._conninfo, self._pool_size, self._timeout, "plantpulse-outbox", self._where
        )
        self._pool = pool
        try:
            async with self._tx() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                for statement in SCHEMA:
                    await conn.execute(statement)
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def save(self, change: Change) -> Saved:
        async with self._tx() as conn, conn.cursor() as cur:
            cancelled: list[int] = []
            for alert_id in change.cancel:
                await cur.execute(
                    "UPDATE outbox SET status = 'cancelled' WHERE alert_id = %s"
                    " AND status IN ('pending', 'sending', 'held') RETURNING id",
                    (alert_id,),
                )
                cancelled.extend(int(r[0]) for r in await cur.fetchall())
            if change.states:
                await cur.executemany(
                    "INSERT INTO notify_state (alert_id, state, active) VALUES (%s, %s, %s)"
                    " ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, active = excluded.active",
                    [(aid, Jsonb(dict(st)), active) for aid, (st, active) in change.states.items()],
                )
            if change.digested:
                await cur.execute(
                    "UPDATE outbox SET status = 'digested' WHERE id = ANY(%s) AND status = 'held'",
                    (list(change.digested),),
                )
            rows = []
            for r in change.rows:
                await cur.execute(
                    _INSERT_ROW,
                    (r.alert_id, r.step, r.kind, r.recipient, r.channel, r.title, r.body, r.notify_type,
                     r.created_at, r.status, r.msg_key, Jsonb(dict(r.meta))),
                )  # fmt: skip
                got = await cur.fetchone()
                assert got is not None
                rows.append(replace(r, id=int(got[0])))
            if change.flood is not None:
                await cur.execute(
                    "INSERT INTO notify_meta (key, value) VALUES ('flood', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (Jsonb(dict(change.flood)),),
                )
            return Saved(rows, cancelled)

    async def load(self) -> Loaded:
        async with self._tx() as conn:
            await conn.execute("UPDATE outbox SET status = 'pending' WHERE status = 'sending'")
            cur = await conn.execute("SELECT alert_id, state FROM notify_state WHERE active")
            states = {aid: dict(st) for aid, st in await cur.fetchall()}
            cur = await conn.execute("SELECT value FROM notify_meta WHERE key = 'flood'")
            row = await cur.fetchone()
            return Loaded(states, dict(row[0]) if row else None)

    async def known(self, alert_ids: Collection[str]) -> set[str]:
        if not alert_ids:
            return set()
        async with self._tx() as conn:
            cur = await conn.execute(
                "SELECT alert_id FROM notify_state WHERE alert_id = ANY(%s)", (list(alert_ids),)
            )
            return {r[0] for r in await cur.fetchall()}

    async def claim(self, channel: str, limit: int) -> list[OutboxRow]:
        if limit <= 0:
            return []
        async with self._tx() as conn:
            cur = await conn.execute(
                f"UPDATE outbox SET status = 'sending' WHERE id IN ("
                " SELECT id FROM outbox WHERE status = 'pending' AND channel = %s ORDER BY id LIMIT %s"
                f" FOR UPDATE SKIP LOCKED) RETURNING {_ROW_COLUMNS}",
                (channel, limit),
            )
            return sorted((_row(r) for r in await cur.fetchall()), key=lambda r: r.id)

    async def record(self, delivery: Delivery, final: Literal["sent", "failed"] | None) -> None:
        d = delivery
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO deliveries (outbox_id, attempt, at, channel, recipient, status, response)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (d.outbox_id, d.attempt, d.at, d.channel, d.recipient, d.status, d.response),
            )
            await conn.execute(
                "UPDATE outbox SET attempts = greatest(attempts, %s),"
                " status = CASE WHEN %s::text IS NOT NULL AND status = 'sending' THEN %s::text"
                " ELSE status END"
                " WHERE id = %s",
                (d.attempt, final, final, d.outbox_id),
            )

    async def held(self, recipient: str) -> list[OutboxRow]:
        async with self._tx() as conn:
            cur = await conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status = 'held' AND recipient = %s ORDER BY id",
                (recipient,),
            )
            return [_row(r) for r in await cur.fetchall()]

    async def rows(self, alert_id: str | None = None) -> list[OutboxRow]:
        async with self._tx() as conn:
            if alert_id is None:
                cur = await conn.execute(f"SELECT {_ROW_COLUMNS} FROM outbox ORDER BY id")
            else:
                cur = await conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox WHERE alert_id = %s ORDER BY id", (alert_id,)
                )
            return [_row(r) for r in await cur.fetchall()]

    async def deliveries(self, outbox_id: int | None = None) -> list[Delivery]:
        sql = "SELECT outbox_id, attempt, at, channel, recipient, status, response FROM deliveries"
        async with self._tx() as conn:
            if outbox_id is None:
                cur = await conn.execute(sql + " ORDER BY id")
            else:
                cur = await conn.execute(sql + " WHERE outbox_id = %s ORDER BY id", (outbox_id,))
            return [
                Delivery(int(o), int(a), int(at), ch, rc, cast(Literal["ok", "error"], st), resp)
                for o, a, at, ch, rc, st, resp in await cur.fetchall()
            ]

    async def use_nonce(self, nonce: str, alert_id: str, person: str, at: int) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO used_nonces (nonce, alert_id, person, at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (nonce) DO NOTHING",
                (nonce, alert_id, person, at),
            )
            return cur.rowcount == 1

    async def nonce_used(self, nonce: str) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute("SELECT 1 FROM used_nonces WHERE nonce = %s", (nonce,))
            return await cur.fetchone() is not None


__all__ = ["SCHEMA", "PostgresOutbox"]
