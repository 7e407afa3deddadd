"""The change log (``changelog.ChangeLog``) in the SQLite store's file.

Its own connection on its own thread (``SQLiteThread``), like the outbox; opening applies the
store's migrations, so the table exists whichever of the store and the log opens first.
Appends run under ``BEGIN IMMEDIATE``: the write lock is taken before the head is read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import astuple
from typing import TypeVar

from plantpulse.approvals.changelog import seal_after
from plantpulse.approvals.log import Entry, Record
from plantpulse.errors import StoreError
from plantpulse.store.sqlite import _migrate, _transaction, _translate, parse_sqlite_url
from plantpulse.store.sqlite_thread import SQLiteThread

T = TypeVar("T")

_COLUMNS = "seq, change, at, action, actor, detail, prev_hash, hash"


def _record(r: Sequence[object]) -> Record:
    seq, change, at, action, actor, detail, prev, h = r
    return Record(int(seq), int(change), int(at), str(action), str(actor), str(detail), str(prev), str(h))  # type: ignore[call-overload]


class SQLiteChangeLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._db = SQLiteThread(parse_sqlite_url(url), "plantpulse-changelog")

    async def _run(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        if not self._db.is_open:
            raise StoreError(f"change log in {self.url} is not open")
        try:
            return await self._db.call(fn)
        except sqlite3.Error as exc:
            raise _translate(exc, what) from exc

    async def open(self) -> None:
        try:
            await self._db.open(_migrate)
        except sqlite3.Error as exc:
            raise _translate(exc, f"open {self.url}") from exc

    async def close(self) -> None:
        await self._db.close()

    async def append(self, entries: Sequence[Entry], *, head: int) -> list[Record]:
        def work(conn: sqlite3.Connection) -> list[Record]:
            with _transaction(conn):
                row = conn.execute(f"SELECT {_COLUMNS} FROM change_log ORDER BY seq DESC LIMIT 1").fetchone()
                out = seal_after(None if row is None else _record(row), head, entries)
                conn.executemany(f"INSERT INTO change_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 [astuple(r) for r in out])  # fmt: skip
                return out

        return await self._run(work, "append to change_log")

    async def records(self, after: int = 0) -> list[Record]:
        def work(conn: sqlite3.Connection) -> list[Record]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM change_log WHERE seq > ? ORDER BY seq", (after,))
            return [_record(r) for r in rows.fetchall()]

        return await self._run(work, "read change_log")

    async def head(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0])

        return await self._run(work, "read change_log")
