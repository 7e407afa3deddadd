"""The change log on SQLite and PostgreSQL: appends are serial and sealed, stale heads are
refused, the table refuses UPDATE and DELETE, and what is read back verifies."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest

from plantpulse.approvals.changelog import ChangeLog, Conflict, open_change_log
from plantpulse.approvals.log import Entry, verify
from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError

T0 = 1_767_225_600_000_000_000


def entry(i: int, detail: object = None) -> Entry:
    return Entry(change=i, at=T0 + i, action="proposed", actor="吴芳", detail={"x": detail if detail else i})


async def test_appends_chain_and_read_back_exactly(change_log: ChangeLog) -> None:
    assert await change_log.head() == 0
    first = await change_log.append([entry(1), entry(2, {"浮点": 0.1 + 0.2, "b": [1, "二"]})], head=0)
    assert [r.seq for r in first] == [1, 2]
    more = await change_log.append([entry(3)], head=2)
    got = await change_log.records()
    assert got == [*first, *more]
    assert verify(got) == []
    assert await change_log.records(after=2) == more
    assert await change_log.head() == 3


async def test_a_stale_head_is_refused_and_writes_nothing(change_log: ChangeLog) -> None:
    await change_log.append([entry(1)], head=0)
    with pytest.raises(Conflict):
        await change_log.append([entry(2), entry(3)], head=0)
    assert [r.seq for r in await change_log.records()] == [1]


async def test_two_processes_appending_at_once_do_not_fork_the_chain(
    change_log: ChangeLog, store_config: StoreConfig
) -> None:
    other = open_change_log(store_config)
    await other.open()
    try:

        async def writer(log: ChangeLog, tag: str) -> None:
            for _ in range(10):
                while True:
                    head = await log.head()
                    try:
                        await log.append([Entry(1, T0, "notified", tag, {})], head=head)
                        break
                    except Conflict:
                        continue

        await asyncio.gather(writer(change_log, "a"), writer(other, "b"))
    finally:
        await other.close()
    recs = await change_log.records()
    assert len(recs) == 20 and verify(recs) == []


async def test_the_table_refuses_update_and_delete(change_log: ChangeLog, store_config: StoreConfig) -> None:
    await change_log.append([entry(1)], head=0)
    url = store_config.url
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for stmt in ("UPDATE change_log SET actor = 'x'", "DELETE FROM change_log"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(stmt)
        finally:
            conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            for stmt in (
                "UPDATE change_log SET actor = 'x'",
                "DELETE FROM change_log",
                "TRUNCATE change_log",
            ):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    pg.execute(stmt)
    assert len(await change_log.records()) == 1


async def test_using_a_closed_log_is_a_store_error(store_config: StoreConfig) -> None:
    log = open_change_log(store_config)
    with pytest.raises(StoreError, match="not open"):
        await log.head()
