"""One sqlite3 connection on its own thread: what the SQLite store and outbox stand on.

sqlite3 blocks and a connection belongs to the thread that made it, so each user owns ONE
connection and runs every call on a private single-thread executor. That serialises work on
the connection without a lock (SQLite has one writer anyway), keeps transactions from
interleaving and never blocks the event loop. A call that fails inside a transaction is
rolled back before its exception reaches the caller, who translates sqlite3 errors.

The database file (and so its ``-wal`` and ``-shm`` files, which SQLite creates with the
database's mode) is 0600: it holds working acknowledge links. Opening waits for the database
(up to ``open_wait`` seconds) when another connection holds it: the busy timeout covers plain
lock waits, and a retry covers what it does not (recovery of a killed writer's WAL, a lock
upgrade refused to avoid a deadlock), so a restart right after a kill never crash-loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SQLiteThread:
    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self, setup: Callable[[sqlite3.Connection], None], open_wait: float = 30.0) -> None:
        """Connect in WAL mode (synchronous=NORMAL, 5 s busy timeout), then ``setup`` (schema,
        migrations) on the connection's thread; a failure closes everything again. While the
        database is busy or locked the whole attempt is repeated for up to ``open_wait`` s."""
        if self._conn is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

        def attempt() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout=5000")  # first: another user may be migrating the file
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        def connect() -> sqlite3.Connection:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                _private(Path(self.path))
            deadline = time.monotonic() + open_wait
            while True:
                try:
                    return attempt()
                except sqlite3.OperationalError as e:
                    if not _busy(e) or time.monotonic() >= deadline:
                        raise
                time.sleep(0.1)  # the other connection goes on; ours tries again

        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the connection's thread; raises RuntimeError when not open."""
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise RuntimeError(f"{self.path} is not open")

        def run() -> T:
            try:
                return fn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

        return await asyncio.get_running_loop().run_in_executor(executor, run)

    async def close(self) -> None:
        """Close the connection (the last WAL connection checkpoints on close)."""
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            self._conn = self._executor = None
            executor.shutdown(wait=True)


def _busy(e: sqlite3.OperationalError) -> bool:
    name = getattr(e, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(e)


def _private(path: Path) -> None:
    """Create the database file 0600 (SQLite gives ``-wal``/``-shm`` the same mode); narrow
    an existing one and its companions to the owner."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
