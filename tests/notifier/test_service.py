"""The escalation notifier with real parts: SQLite store and outbox, apprise json:// pushes to a
local PushReceiver, time stepped with a ManualClock (``notifier.idle()`` instead of sleeps)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from pydantic import SecretStr
from service_helpers import T0, M, S, raised, running, team_plant, who

from plantpulse.notifier.receiver import PushReceiver
from plantpulse.notifier.service import ManualClock
from plantpulse.samples import SampleBatch, TagRegistry


async def test_raise_notifies_step0_then_escalates_at_its_time(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            ev = raised()
            await r.raise_alert(ev)
            got = await rx.wait_for(2)
            await r.notifier.idle()
            assert sorted(who(got)) == ["lina", "zhangwei"]  # wecom only: not 李娜's sms
            assert got[0].body["title"] == "【高】报警:weld-current-deviation @ line1/weld00"
            assert "当班:操作工:张伟;班组长:李娜" in got[0].body["message"]
            assert "确认:http://127.0.0.1:1/ack/" in got[0].body["message"]

            clock.set(T0 + 15 * M - 1)
            await r.notifier.idle()
            assert len(rx.received) == 2
            clock.set(T0 + 15 * M)
            await rx.wait_for(3)
            await r.notifier.idle()
            assert who(rx.received)[2:] == ["wufang"]
            assert rx.received[2].body["title"].startswith("【高】升级")

            rows = await r.outbox.rows(ev.alert_id)
            assert [(x.step, x.recipient, x.status) for x in rows] == [
                (0, "张伟", "sent"), (0, "李娜", "sent"), (1, "吴芳", "sent")
            ]  # fmt: skip
            deliveries = await r.outbox.deliveries()
            assert [d.status for d in deliveries] == ["ok", "ok", "ok"]
            journal = [(e.action, e.actor) for e in await r.store.journal(ev.alert_id)]
            assert journal == [("raised", "engine"), ("notified", "notifier"), ("escalated", "notifier")]


async def test_acknowledge_stops_the_escalation(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url, repeat="10m"), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            ev = raised()
            await r.raise_alert(ev)
            await rx.wait_for(2)
            clock.set(T0 + 5 * M)
            alert = await r.notifier.acknowledge(ev.alert_id, "李娜", "换了焊丝", source="test")
            assert alert is not None and alert.acked_by == "李娜"
            await r.notifier.idle()
            assert r.notifier.pending == {}
            clock.set(T0 + 2 * 3600 * S)  # past every step and many repeats
            await r.notifier.idle()
            assert len(rx.received) == 2
            acks = [e for e in await r.store.journal(ev.alert_id) if e.action == "acknowledged"]
            detail = {"comment": "换了焊丝", "source": "test"}
            assert [(e.actor, e.detail) for e in acks] == [("李娜", detail)]


async def test_ack_from_the_cli_is_noticed_and_stops_the_escalation(tmp_path: Path) -> None:
    db = tmp_path / "pp.db"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(db, plant, clock) as r:
            ev = raised()
            await r.raise_alert(ev)
            await rx.wait_for(2)
            await r.notifier.idle()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "plantpulse", "ack", ev.alert_id, "--by", "张伟", "--comment", "已处理",
                "--store", f"sqlite:///{db}", stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out
            clock.set(T0 + 5 * S)  # the next store poll
            await r.notifier.idle()
            assert r.notifier.pending == {}
            clock.set(T0 + 3600 * S)
            await r.notifier.idle()
            assert len(rx.received) == 2


async def test_failed_delivery_escalates_at_once_with_a_record_per_attempt(tmp_path: Path, port: int) -> None:
    async with PushReceiver() as rx:
        plant = team_plant(rx.url)
        people = dict(plant.team.people)
        dead = people["张伟"].model_copy(update={"contacts": {"wecom": SecretStr(f"json://127.0.0.1:{port}/a")}})
        lead = people["李娜"].model_copy(update={"contacts": {"wecom": SecretStr(f"json://127.0.0.1:{port}/b")}})
        team = plant.team.model_copy(update={"people": {**people, "张伟": dead, "李娜": lead}})
        plant = plant.model_copy(update={"team": team})
        clock = ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock, retries=3) as r:
            ev = raised()
            await r.raise_alert(ev)
            got = await rx.wait_for(1)  # step 1 (quality engineer) at once, not after 15 min
            await r.notifier.idle()
            assert who(got) == ["wufang"]
            assert clock.now() == T0
            attempts = [(d.recipient, d.attempt, d.status) for d in await r.outbox.deliveries()]
            assert sorted(a for a in attempts if a[2] == "error") == [
                ("张伟", 1, "error"), ("张伟", 2, "error"), ("张伟", 3, "error"),
                ("李娜", 1, "error"), ("李娜", 2, "error"), ("李娜", 3, "error"),
            ]  # fmt: skip
            failed = [e for e in await r.store.journal(ev.alert_id) if e.action == "delivery-failed"]
            assert sorted(e.detail["recipient"] for e in failed) == ["张伟", "李娜"]
            assert r.notifier.counts["failed"] == 2


async def test_kill_mid_escalation_and_restart_sends_the_next_step_once_at_its_time(tmp_path: Path) -> None:
    db = tmp_path / "pp.db"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        ev = raised()
        async with running(db, plant, clock, abort=True) as r:
            await r.raise_alert(ev)
            await rx.wait_for(2)
            await r.notifier.idle()
            clock.set(T0 + 10 * M)
            await r.notifier.idle()
        # killed; ten minutes pass while it is down
        clock.set(T0 + 14 * M)
        async with running(db, plant, clock) as r:
            await r.notifier.idle()
            assert len(rx.received) == 2  # step 0 is not sent again
            assert list(r.notifier.pending) == [ev.alert_id]
            clock.set(T0 + 15 * M - 1)
            await r.notifier.idle()
            assert len(rx.received) == 2
            clock.set(T0 + 15 * M)
            await rx.wait_for(3)
            await r.notifier.idle()
            assert who(rx.received).count("wufang") == 1
            r.notifier.submit([ev], {})  # the pipeline replays the raise after its own restart
            await r.notifier.idle()
            assert len(rx.received) == 3
            rows = await r.outbox.rows(ev.alert_id)
            assert [(x.step, x.recipient) for x in rows] == [(0, "张伟"), (0, "李娜"), (1, "吴芳")]


async def test_rows_saved_but_not_delivered_before_a_crash_go_out_once_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "pp.db"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        ev = raised()
        async with running(db, plant, clock, abort=True, workers=0) as r:  # nobody delivers
            await r.raise_alert(ev)
            await r.notifier.idle(delivered=False)
            rows = await r.outbox.rows(ev.alert_id)
            assert [x.status for x in rows] == ["sending", "sending"]
        async with running(db, plant, clock) as r:
            await rx.wait_for(2)
            await r.notifier.idle()
            assert sorted(who(rx.received)) == ["lina", "zhangwei"]
            assert [x.status for x in await r.outbox.rows(ev.alert_id)] == ["sent", "sent"]


async def test_flood_sends_one_digest_instead_of_each_alert(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url, threshold=2), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            for i in range(5):
                await r.raise_alert(raised(i, at=T0 + i))
            await r.notifier.idle()
            assert len(rx.received) == 4  # two alerts each to 张伟 and 李娜, three held per person
            assert r.notifier.counts["held"] == 6
            clock.set(T0 + 60 * S)
            await rx.wait_for(6)
            await r.notifier.idle()
            digests = rx.received[4:]
            assert sorted(who(digests)) == ["lina", "zhangwei"]
            titles = [d.body["title"] for d in digests]
            assert all(t.startswith("【报警汇总】") and "3 条报警" in t for t in titles), titles


async def test_full_channel_queue_defers_to_the_outbox_and_loses_nothing(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock, queue_size=1, workers=1) as r:
            for i in range(6):
                await r.raise_alert(raised(i, at=T0 + i))
            await rx.wait_for(12)
            await r.notifier.idle()
            assert r.notifier.counts["deferred"] > 0
            assert r.notifier.counts["sent"] == 12
            assert {x.status for x in await r.outbox.rows()} == {"sent"}


async def test_shelve_holds_the_escalation_and_announces_again_when_it_ends(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            ev = raised()
            await r.raise_alert(ev)
            await rx.wait_for(2)
            clock.set(T0 + 10 * M)
            await r.notifier.shelve(ev.alert_id, "李娜", T0 + 40 * M, "换焊枪")
            await r.notifier.idle()
            clock.set(T0 + 40 * M - 1)  # step 1 would be due at 15 min: held
            await r.notifier.idle()
            assert len(rx.received) == 2
            clock.set(T0 + 40 * M)  # shelve over: step 0 announced again
            await rx.wait_for(4)
            await r.notifier.idle()
            assert all("提醒" in x.body["title"] for x in rx.received[2:])
            clock.set(T0 + 45 * M)  # 10 unshelved minutes + 5 more: step 1
            await rx.wait_for(5)
            assert who(rx.received)[4] == "wufang"


async def test_clear_before_ack_sends_a_cleared_note_and_stops(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            ev = raised()
            await r.raise_alert(ev)
            await rx.wait_for(2)
            clock.set(T0 + 60 * S)
            await r.raise_alert(raised(at=T0 + 60 * S, kind="cleared", raised_at=T0))
            await rx.wait_for(4)
            await r.notifier.idle()
            assert all(x.body["title"].startswith("【高】已恢复") for x in rx.received[2:])
            clock.set(T0 + 3600 * S)
            await r.notifier.idle()
            assert len(rx.received) == 4


async def test_raise_message_summarises_the_trend_over_the_for_window(tmp_path: Path) -> None:
    """The rule's ``for`` travels with the event; the message reads that window from the store."""
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock) as r:
            tags = TagRegistry(["line1/weld00/current"])
            window = [T0 - 3 * S + i * S // 10 for i in range(31)]  # 10 Hz over the 3 s before the raise
            values = [186.0 + i * 0.1 for i in range(31)]  # 186.0 rising to 189.0
            await r.store.write_samples(SampleBatch.make(tags, window, [0] * 31, values), "trend-batch")
            await r.raise_alert(replace(raised(), window=3 * S))
            got = await rx.wait_for(2)
    assert "趋势:近 3s 最小 186,最大 189,最新 189(上升 ↑)" in got[0].body["message"]
