"""Where the change log lives: the ``ChangeLog`` contract and ``open_change_log``.

A contract of its own rather than more ``Store`` methods: the log is written by people's
commands (CLI, API) and the running pipeline alike, rarely, and its one hard rule is
serial: a record is sealed with the hash of the record before it, so every append takes the
log's write lock, reads the head and inserts in ONE transaction. ``append`` also refuses when
the head moved since the caller read it (``Conflict``): an approval is decided on the log as
read, and two people approving the same level at once must not both succeed; the caller
re-reads, re-decides and tries again.

The tables come from the store's migrations (SQLite step 2, PostgreSQL version 4), so the log
sits in the same database as the alerts it explains. Backends: ``sqlite_log.SQLiteChangeLog``
and ``postgres_log.PostgresChangeLog``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from plantpulse.approvals.log import Entry, Record, seal
from plantpulse.errors import StoreError

if TYPE_CHECKING:
    from plantpulse.config import StoreConfig

__all__ = ["ChangeLog", "Conflict", "open_change_log", "seal_after"]


class Conflict(StoreError):
    """The log moved on since the caller read it: read again, decide again."""


class ChangeLog(Protocol):
    async def open(self) -> None:
        """Connect and apply the store's pending migrations (idempotent)."""

    async def close(self) -> None: ...

    async def append(self, entries: Sequence[Entry], *, head: int) -> list[Record]:
        """Seal and append ``entries`` in one transaction, provided the last record is still
        ``head`` (0: the log is empty); else raise ``Conflict`` and write nothing."""

    async def records(self, after: int = 0) -> list[Record]:
        """Every record with ``seq > after``, in ``seq`` order, exactly as stored."""

    async def head(self) -> int:
        """The ``seq`` of the last record (0: empty): a cheap poll for news."""


def open_change_log(store: StoreConfig | str) -> ChangeLog:
    """The change log in the database of ``store`` (a ``store:`` section or a URL)."""
    from plantpulse.config import StoreConfig

    cfg = store if isinstance(store, StoreConfig) else StoreConfig(url=store)
    scheme = cfg.url.partition(":")[0].lower()
    if scheme == "sqlite":
        from plantpulse.approvals.sqlite_log import SQLiteChangeLog

        return SQLiteChangeLog(cfg.url)
    if scheme in {"postgresql", "postgres"}:
        from plantpulse.approvals.postgres_log import PostgresChangeLog

        return PostgresChangeLog(cfg)
    raise ValueError(f"no change log for store URL scheme {scheme!r}")


def seal_after(last: Record | None, head: int, entries: Sequence[Entry]) -> list[Record]:
    """What a backend inserts: ``entries`` sealed after ``last`` (the log's last record, read
    under its write lock), provided that is still record ``head``; else ``Conflict``."""
    seq = 0 if last is None else last.seq
    if seq != head:
        raise Conflict(f"the change log moved on (record {seq}, not {head})")
    out: list[Record] = []
    for e in entries:
        last = seal(last, e)
        out.append(last)
    return out
