"""The Outbox contract on its one backend: a local SQLite file (``outbox.db`` in the plant's state
directory), whatever the sample store is."""

from __future__ import annotations

import asyncio
import math
import os
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plantpulse.config import StoreConfig
from plantpulse.notifier.outbox import Ack, Change, Delivery, Escalation, Outbox, OutboxRow
from plantpulse.store.sqlite_outbox import SQLiteOutbox, outbox_path

T0 = 1_796_083_200 * 10**9
INFO = {"rule": "r", "value": 1.5}


def row(
    alert: str = "a1", person: str = "张伟", channel: str = "wecom", status: Any = "pending"
) -> OutboxRow:
    return OutboxRow(alert, 0, "raise", person, channel, "【高】报警", "正文", "failure", T0, status,
                     f"{alert}/0/{person}", {"rule": "r", "value": 1.5})  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
async def outbox(path: Path) -> AsyncIterator[Outbox]:
    o = SQLiteOutbox(path)
    await o.open()
    await o.open()  # idempotent
    try:
        yield o
    finally:
        await o.close()


def test_the_outbox_lives_in_the_plant_state_directory_whatever_the_store() -> None:
    for url in ("sqlite:///plant.db", "postgresql://pp@db.example:5433/plant"):
        store = StoreConfig(url=url)
        assert outbox_path(store) == store.state_dir / "outbox.db"


async def test_state_and_rows_are_saved_together_and_resumed(outbox: Outbox, path: Path) -> None:
    saved = await outbox.save(Change(states={"a1": Escalation({"x": [1, 2]}, INFO, True),
                                             "a2": Escalation({}, INFO, False)},
                                     rows=[row(), row(person="李娜")], flood={"held": {}}))  # fmt: skip
    assert [r.id for r in saved.rows] == sorted(r.id for r in saved.rows) and all(r.id for r in saved.rows)
    assert await outbox.known(["a1", "a2", "zz"]) == {"a1", "a2"}
    claimed = await outbox.claim("wecom", 1)
    assert [(r.recipient, r.status, r.meta["value"]) for r in claimed] == [("张伟", "sending", 1.5)]
    await outbox.close()
    again = SQLiteOutbox(path)  # a restart: the claimed row is pending again
    await again.open()
    try:
        loaded = await again.load()
        assert loaded.states == {"a1": Escalation({"x": [1, 2]}, INFO, True)}
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
    first = await outbox.acknowledge(Ack("a1", "张伟", T0, "好", "link"), nonce="n1")
    assert first is not None and (first.by, first.comment, first.forwarded) == ("张伟", "好", False)
    assert await outbox.acknowledge(Ack("a2", "张伟", T0 + 1, None, "link"), nonce="n1") is None
    assert await outbox.nonce_used("n1")
    assert [a.alert_id for a in await outbox.acks_since(0)] == ["a1"]  # nothing recorded for a2


async def test_the_first_acknowledgement_counts_and_is_forwarded_once(outbox: Outbox) -> None:
    one = await outbox.acknowledge(Ack("a1", "张伟", T0))
    two = await outbox.acknowledge(Ack("a1", "李娜", T0 + 5))
    three = await outbox.acknowledge(Ack("a2", "李娜", T0 + 6, source="api"))
    assert one is not None and two == one and three is not None and three.seq > one.seq
    assert [(a.alert_id, a.by) for a in await outbox.acks_since(0)] == [("a1", "张伟"), ("a2", "李娜")]
    assert [a.alert_id for a in await outbox.acks_since(one.seq)] == ["a2"]
    await outbox.forwarded(one.seq)
    await outbox.forwarded(three.seq, drop=True)  # the store has no such alert
    assert await outbox.unforwarded() == []
    assert [(a.alert_id, a.forwarded) for a in await outbox.acks_since(0)] == [("a1", True)]


async def test_resume_brings_the_acknowledgements_of_active_escalations(outbox: Outbox) -> None:
    await outbox.save(
        Change(states={"a1": Escalation({"s": 1}, INFO, True), "a2": Escalation({}, INFO, False)})
    )
    await outbox.acknowledge(Ack("a1", "张伟", T0))
    await outbox.acknowledge(Ack("a2", "张伟", T0))
    loaded = await outbox.load()
    assert [a.alert_id for a in loaded.acks] == ["a1"]
    assert loaded.ack_seq == max(a.seq for a in await outbox.acks_since(0))


async def test_quarantined_escalations_keep_their_error_and_are_not_resumed(outbox: Outbox) -> None:
    await outbox.save(Change(states={"a1": Escalation({}, INFO, False, "TypeError: bad on_shift")}))
    assert await outbox.known(["a1"]) == {"a1"}
    kept = await outbox.escalation("a1")
    assert kept is not None and kept.error == "TypeError: bad on_shift" and not kept.active
    assert (await outbox.load()).states == {}


async def test_non_finite_values_and_lone_surrogates_are_stored_safely(outbox: Outbox) -> None:
    info = {"value": math.nan, "trend": [math.inf, -math.inf, 1.0, 2.0, 3, 10], "message": "bad \udc80 byte"}
    nan_row = OutboxRow("a1", 0, "raise", "张伟", "wecom", "t", "b", "failure", T0, "held", "k",
                        {"value": math.inf})  # fmt: skip
    await outbox.save(Change(states={"a1": Escalation({"v": math.nan}, info, True)}, rows=[nan_row]))
    loaded = (await outbox.load()).states["a1"]
    assert loaded.info["message"] == "bad \udc80 byte"
    assert [float(x) for x in loaded.info["trend"][:2]] == [math.inf, -math.inf]
    assert math.isnan(float(loaded.info["value"])) and math.isnan(float(loaded.state["v"]))
    assert float((await outbox.held("张伟"))[0].meta["value"]) == math.inf


async def test_the_outbox_file_is_private(outbox: Outbox, path: Path) -> None:
    file, folder = await asyncio.to_thread(path.stat), await asyncio.to_thread(path.parent.stat)
    assert (stat.S_IMODE(file.st_mode), stat.S_IMODE(folder.st_mode)) == (0o600, 0o700)


_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


@pytest.mark.slow
async def test_opening_waits_for_a_lock_held_by_another_process(path: Path) -> None:
    """A previous run that has not finished dying (or ``plantpulse ack``) holds the lock longer
    than SQLite's busy timeout (5 s): the restart waits for it instead of failing with
    "database is locked"."""
    first = SQLiteOutbox(path)
    await first.open()
    await first.close()
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(path), "5.5", stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"locked\n"
    outbox = SQLiteOutbox(path)
    try:
        await outbox.open()
        assert (await outbox.load()).states == {}
    finally:
        await outbox.close()
        await holder.wait()
