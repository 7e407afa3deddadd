"""The Outbox contract on both backends: SQLite (a file) and the real PostgreSQL (a fresh database
per test, dropped afterwards)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from plantpulse.notifier.outbox import Change, Delivery, Outbox, OutboxRow, open_outbox

T0 = 1_796_083_200 * 10**9


def row(
    alert: str = "a1", person: str = "张伟", channel: str = "wecom", status: Any = "pending"
) -> OutboxRow:
    return OutboxRow(alert, 0, "raise", person, channel, "【高】报警", "正文", "failure", T0, status,
                     f"{alert}/0/{person}", {"rule": "r", "value": 1.5})  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pp.db'}"
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    import psycopg
    from psycopg import sql

    name = f"test_outbox_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def outbox(url: str) -> AsyncIterator[Outbox]:
    o = open_outbox(url)
    await o.open()
    await o.open()  # idempotent
    try:
        yield o
    finally:
        await o.close()


async def test_state_and_rows_are_saved_together_and_resumed(outbox: Outbox, url: str) -> None:
    saved = await outbox.save(Change(states={"a1": ({"x": [1, 2]}, True), "a2": ({}, False)},
                                     rows=[row(), row(person="李娜")], flood={"held": {}}))  # fmt: skip
    assert [r.id for r in saved.rows] == sorted(r.id for r in saved.rows) and all(r.id for r in saved.rows)
    assert await outbox.known(["a1", "a2", "zz"]) == {"a1", "a2"}
    claimed = await outbox.claim("wecom", 1)
    assert [(r.recipient, r.status, r.meta["value"]) for r in claimed] == [("张伟", "sending", 1.5)]
    await outbox.close()
    again = open_outbox(url)  # a restart: the claimed row is pending again
    await again.open()
    try:
        loaded = await again.load()
        assert loaded.states == {"a1": {"x": [1, 2]}}
        assert loaded.flood == {"held": {}}
        assert [r.recipient for r in await again.claim("wecom", 10)] == ["张伟", "李娜"]
        assert await again.claim("wecom", 10) == []
    finally:
        await again.close()
    await outbox.open()


async def test_attempts_are_recorded_and_a_cancelled_row_stays_cancelled(outbox: Outbox) -> None:
    saved = await outbox.save(Change(rows=[row(), row("a2")]))
    first, second = saved.rows
    await outbox.claim("wecom", 10)
    await outbox.record(Delivery(first.id, 1, T0, "wecom", "张伟", "error", "HTTP 500"), None)
    await outbox.record(Delivery(first.id, 2, T0 + 1, "wecom", "张伟", "ok", "SUCCESS"), "sent")
    cancelled = await outbox.save(Change(cancel=["a2"], rows=[row("a2", person="吴芳")]))
    assert cancelled.cancelled == [second.id]
    await outbox.record(Delivery(second.id, 1, T0, "wecom", "张伟", "ok", "late"), "sent")
    statuses = {(r.alert_id, r.recipient): (r.status, r.attempts) for r in await outbox.rows()}
    assert statuses == {
        ("a1", "张伟"): ("sent", 2), ("a2", "张伟"): ("cancelled", 1), ("a2", "吴芳"): ("pending", 0)
    }  # fmt: skip
    assert [(d.attempt, d.status, d.response) for d in await outbox.deliveries(first.id)] == [
        (1, "error", "HTTP 500"), (2, "ok", "SUCCESS")
    ]  # fmt: skip


async def test_held_rows_are_digested_once(outbox: Outbox) -> None:
    rows = [row(status="held"), row("a2", status="held"), row("a3", person="x")]
    saved = await outbox.save(Change(rows=rows))
    held = await outbox.held("张伟")
    assert [r.alert_id for r in held] == ["a1", "a2"]
    await outbox.save(Change(digested=[r.id for r in held]))
    assert await outbox.held("张伟") == []
    assert {r.status for r in await outbox.rows() if r.id in {h.id for h in held}} == {"digested"}
    assert len(saved.rows) == 3


async def test_a_nonce_is_used_once(outbox: Outbox) -> None:
    assert not await outbox.nonce_used("n1")
    assert await outbox.use_nonce("n1", "a1", "张伟", T0)
    assert not await outbox.use_nonce("n1", "a1", "张伟", T0 + 1)
    assert await outbox.nonce_used("n1")
