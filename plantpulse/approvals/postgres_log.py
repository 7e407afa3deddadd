"""The change log (``changelog.ChangeLog``) on PostgreSQL, psycopg 3 async, its own small pool.

Opening applies the store's migrations (version 4 makes ``change_log``). Appends take a
transaction-scoped advisory lock before reading the head, so two processes appending at once
queue instead of both sealing onto the same record; psycopg errors become StoreError /
StoreUnavailable here, with host:port and never the password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from plantpulse.approvals.changelog import seal_after
from plantpulse.approvals.log import Entry, Record
from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError
from plantpulse.store.postgres import PostgresStore, _expand_env, _host_port, _store_error, open_pool

_LOCK_KEY = 0x6C6F67  # "log": serialises appends between processes
_COLUMNS = "seq, change, at, action, actor, detail, prev_hash, hash"


def _record(r: Sequence[Any]) -> Record:
    seq, change, at, action, actor, detail, prev, h = r
    return Record(int(seq), int(change), int(at), action, actor, detail, prev, h)


class PostgresChangeLog:
    def __init__(self, config: StoreConfig, pool_size: int = 2) -> None:
        self._cfg = config
        self._timeout = float(max(2, round(config.connect_timeout / 1e9)))
        self._conninfo = make_conninfo(
            _expand_env(config.url),
            connect_timeout=round(self._timeout),
            application_name="plantpulse-changelog",
        )
        self._where = _host_port(self._conninfo)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._pool is None:
            raise StoreError(f"change log at {self._where} is not open")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, OSError) as e:
            raise _store_error(e, self._where) from e

    async def open(self) -> None:
        if self._pool is not None:
            return
        from plantpulse.store import migrations

        async with PostgresStore(self._cfg.url, self._cfg).admin_connection() as conn:
            await migrations.migrate(conn, self._cfg.timescale)
        self._pool = await open_pool(
            self._conninfo, self._pool_size, self._timeout, "plantpulse-changelog", self._where
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def append(self, entries: Sequence[Entry], *, head: int) -> list[Record]:
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM change_log ORDER BY seq DESC LIMIT 1")
            row = await cur.fetchone()
            out = seal_after(None if row is None else _record(row), head, entries)
            async with conn.cursor() as c:
                await c.executemany(
                    f"INSERT INTO change_log ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [astuple(r) for r in out],
                )
            return out

    async def records(self, after: int = 0) -> list[Record]:
        async with self._tx() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM change_log WHERE seq > %s ORDER BY seq", (after,)
            )
            return [_record(r) for r in await cur.fetchall()]

    async def head(self) -> int:
        async with self._tx() as conn:
            cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM change_log")
            row = await cur.fetchone()
            return int(row[0]) if row is not None else 0
