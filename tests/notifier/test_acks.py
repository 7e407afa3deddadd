"""Acknowledgements reach the notifier at once, whichever way they arrive: API and links call it
directly (outbox first, forwarded to the store later if it is down), ``plantpulse ack`` writes the
outbox (noticed within 250 ms), and acknowledgements made in the store by others are noticed with
ONE store read per poll over all active alerts. Real SQLite store and outbox, local PushReceiver."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from service_helpers import SECRET, T0, M, S, on_shift, raised, running, team_plant, who

from plantpulse.api.app import Api
from plantpulse.config import StoreConfig
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.links import link, sign
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.people.roster import Roster
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.store.sqlite_outbox import SQLiteOutbox

TOKEN = "test-token-0123456789"


class CountingStore:
    """The real store, counting which reads the notifier makes (a spy: every call goes through)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.calls = Counter[str]()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


async def test_acks_made_in_the_store_by_others_are_noticed_with_one_read_per_poll(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(tmp_path / "pp.db", plant, clock, poll_interval=2 * S) as r:
            await r.notifier.abort()  # this test runs its own notifier on a counting store
            spy = CountingStore(r.store)
            url = f"sqlite:///{tmp_path / 'pp.db'}"
            notifier = EscalationNotifier(
                Roster(plant.team, plant.site.timezone), r.outbox, store=spy, clock=clock,  # type: ignore[arg-type]
                poll_interval=2 * S, backoff=0.001,
            )  # fmt: skip
            await notifier.start()
            try:
                events = [raised(i) for i in range(3)]
                shifts = {k: v for ev in events for k, v in on_shift(plant, ev).items()}
                await r.store.write_alert_events(events, uuid.uuid4().hex, shifts)
                notifier.submit(events, shifts)
                await rx.wait_for(6)
                await notifier.idle()
                other = SQLiteStore(url)  # another process (the board, a second service) acknowledges
                await other.open()
                for ev in events:
                    await other.acknowledge(ev.alert_id, "李娜", T0 + S, "已处理", source="board")
                await other.close()
                spy.calls.clear()
                clock.set(T0 + 2 * S)  # one poll interval
                await notifier.idle()
                assert notifier.pending == {}
                assert spy.calls == Counter({"alerts_by_id": 1})  # one read for all three, none per alert
                clock.set(T0 + 3600 * S)
                await notifier.idle()
                assert len(rx.received) == 6
            finally:
                await notifier.stop()


async def test_plantpulse_ack_is_noticed_within_a_quarter_second(tmp_path: Path) -> None:
    db = tmp_path / "pp.db"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        async with running(db, plant, clock, poll_interval=3600 * S) as r:
            events = [raised(i) for i in range(3)]
            for ev in events:
                await r.raise_alert(ev)
            await rx.wait_for(6)
            await r.notifier.idle()
            for ev in events[:2]:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "plantpulse", "ack", ev.alert_id, "--by", "张伟",
                    "--store", f"sqlite:///{db}", stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await proc.communicate()
                assert proc.returncode == 0, out
            clock.set(T0 + 250 * 10**6)  # the next outbox poll, not the store's
            await r.notifier.idle()
            assert list(r.notifier.pending) == [events[2].alert_id]
            clock.set(T0 + 15 * M)
            await rx.wait_for(7)
            await r.notifier.idle()
            assert who(rx.received[6:]) == ["wufang"]  # only the alert nobody acknowledged escalates


def api_for(
    store: SQLiteStore, outbox: SQLiteOutbox, notifier: EscalationNotifier, clock: ManualClock
) -> Api:
    return Api(store, token=TOKEN, secret=SECRET, outbox=outbox, notifier=notifier, team=notifier.team,
               clock=clock)  # fmt: skip


async def test_api_and_link_acks_work_while_the_store_is_down_and_reach_it_later(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        pipeline = SQLiteStore(url)  # what the spool writer will have written
        await pipeline.open()
        down = SQLiteStore(url)  # the notifier's handle, not open: every call fails like an outage
        outbox = SQLiteOutbox.for_store(StoreConfig(url=url))
        await outbox.open()
        notifier = EscalationNotifier(
            Roster(plant.team, plant.site.timezone), outbox, store=down, clock=clock, secret=SECRET,
            link_base="http://127.0.0.1:1/ack", backoff=0.001, forward_backoff=(0.02, 0.05),
        )  # fmt: skip
        await notifier.start()
        try:
            first, second = raised(0), raised(1)
            shifts = {k: v for ev in (first, second) for k, v in on_shift(plant, ev).items()}
            await pipeline.write_alert_events([first, second], uuid.uuid4().hex, shifts)
            notifier.submit([first, second], shifts)
            await rx.wait_for(4)
            await notifier.idle()
            api = api_for(down, outbox, notifier, clock)
            transport = httpx.ASGITransport(app=api.app, client=("10.1.2.3", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://pp.test") as http:
                auth = {"Authorization": f"Bearer {TOKEN}"}
                r = await http.post(f"/api/alerts/{first.alert_id}/ack", headers=auth, json={"by": "赵敏"})
                assert r.status_code == 200 and r.json()["acked_by"] == "赵敏"
                token = sign(SECRET, second.alert_id, "李娜", T0 + 3600 * S, "n-1")
                page = await http.post(link("/ack", token), data={"comment": "马上处理"})
                assert page.status_code == 200 and "已由 李娜 确认" in page.text
                assert (await http.post(link("/ack", token))).status_code == 409  # spent, store or not
            assert notifier.pending == {}  # both stopped before the answers were sent
            assert (await pipeline.alert(first.alert_id)).acked_at is None  # type: ignore[union-attr]
            await down.open()  # the store is back: the forwarder delivers both, once
            await notifier.idle(forwarded=True)
            acks = [e for ev in (first, second) for e in await pipeline.journal(ev.alert_id)]
            acks = [e for e in acks if e.action == "acknowledged"]
            assert [(e.actor, e.detail["source"]) for e in acks] == [
                ("赵敏", "api from 10.1.2.3"), ("李娜", "link from 10.1.2.3")
            ]  # fmt: skip
            assert await outbox.unforwarded() == []
            clock.set(T0 + 3600 * S)
            await notifier.idle()
            assert len(rx.received) == 4
        finally:
            await notifier.stop()
            await outbox.close()
            await down.close()
            await pipeline.close()
