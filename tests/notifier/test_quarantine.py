"""A poison step never blocks the rest: the alert whose step cannot be planned, rendered or saved is
quarantined (logged once, journaled, counted) and every other alert is pushed; NaN and infinite
values are rendered and stored safely. Real SQLite store and outbox, local PushReceiver."""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from service_helpers import T0, M, on_shift, raised, running, team_plant, who

from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.outbox import Change, Escalation, Saved
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.store.sqlite_outbox import SQLiteOutbox


async def test_a_poison_alert_is_quarantined_and_the_others_are_pushed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            poison, nan, inf, plain = raised(0), replace(raised(1), value=math.nan), raised(2), raised(3)
            inf = replace(inf, value=-math.inf)
            shifts = {k: v for ev in (nan, inf, plain) for k, v in on_shift(plant, ev).items()}
            shifts[poison.alert_id] = {"operator": 5}  # type: ignore[dict-item]  # a corrupt snapshot
            for ev in (poison, nan, inf, plain):
                await r.store.write_alert_events([ev], f"b-{ev.tag}", {})
            with caplog.at_level(logging.ERROR, "plantpulse.notifier"):
                r.notifier.submit([poison, nan, inf, plain], shifts)  # type: ignore[arg-type]
                got = await rx.wait_for(6)
                await r.notifier.idle()
                r.notifier.submit([poison], shifts)  # replayed: not tried (nor logged) again
                clock.set(T0 + 15 * M)  # the healthy ones escalate on time
                await rx.wait_for(9)
                await r.notifier.idle()
            assert who(rx.received[6:]) == ["wufang"] * 3
            assert sorted(who(got[:6])) == ["lina", "lina", "lina", "zhangwei", "zhangwei", "zhangwei"]
            texts = [g.body["message"] for g in got[:6]]
            assert sum("数值:NaN" in t for t in texts) == 2 and sum("数值:-inf" in t for t in texts) == 2
            assert poison.alert_id not in r.notifier.pending and len(r.notifier.pending) == 3
            assert r.notifier.counts["quarantined"] == 1
            errors = [x for x in caplog.records if poison.alert_id in x.getMessage()]
            assert len(errors) == 1 and "quarantined" in errors[0].getMessage()
            journal = [e for e in await r.store.journal(poison.alert_id) if e.action == "escalation-failed"]
            assert len(journal) == 1 and "TypeError" in journal[0].detail["error"]
            kept = await r.outbox.escalation(poison.alert_id)
            assert kept is not None and not kept.active and kept.error == journal[0].detail["error"]
            kept_nan = await r.outbox.escalation(nan.alert_id)
            assert kept_nan is not None and math.isnan(float(kept_nan.info["value"]))


class RefusingOutbox(SQLiteOutbox):
    """The real outbox, refusing any write that carries one alert's message, as SQLite refuses a
    value it cannot bind. A test double: since values are sanitised before they are stored, no
    real alert makes the outbox refuse its step any more, and the fallback must still hold."""

    async def save(self, change: Change) -> Saved:
        if any(e.info.get("message") == "refuse me" and e.error is None for e in change.states.values()):
            raise StoreError("outbox save: datatype mismatch") from sqlite3.IntegrityError(
                "datatype mismatch"
            )
        return await super().save(change)


async def test_a_step_the_outbox_refuses_quarantines_that_alert_only(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        outbox = RefusingOutbox.for_store(StoreConfig(url=f"sqlite:///{tmp_path / 'pp.db'}"))
        async with running(tmp_path / "pp.db", plant, clock, outbox=outbox) as r:
            bad, good = replace(raised(0), message="refuse me"), raised(1)
            shifts = {k: v for ev in (bad, good) for k, v in on_shift(plant, ev).items()}
            r.notifier.submit([bad, good], shifts)
            await rx.wait_for(2)
            await r.notifier.idle()
            assert {g.body["title"] for g in rx.received} == {
                "【高】报警:weld-current-deviation @ line1/weld01"
            }
            assert list(r.notifier.pending) == [good.alert_id]
            kept = await r.outbox.escalation(bad.alert_id)
            assert kept is not None and kept.error == "StoreError: outbox save: datatype mismatch"
            clock.set(T0 + 15 * M)
            await rx.wait_for(3)  # and the loop goes on
            assert who(rx.received[2:]) == ["wufang"]


async def test_an_unreadable_escalation_is_quarantined_at_start_and_the_rest_resume(tmp_path: Path) -> None:
    db = tmp_path / "pp.db"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        ev = raised()
        async with running(db, plant, clock, abort=True) as r:
            await r.raise_alert(ev)
            await rx.wait_for(2)
            await r.notifier.idle()
            info = (await r.outbox.escalation(ev.alert_id)).info  # type: ignore[union-attr]
            await r.outbox.save(Change(states={"corrupt": Escalation({"steps": "?"}, info, True)}))
        async with running(db, plant, clock) as r:
            assert list(r.notifier.pending) == [ev.alert_id]
            assert r.notifier.counts["quarantined"] == 1
            kept = await r.outbox.escalation("corrupt")
            assert kept is not None and not kept.active and kept.error is not None
            clock.set(T0 + 15 * M)
            await rx.wait_for(3)
            assert who(rx.received[2:]) == ["wufang"]
