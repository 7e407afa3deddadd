"""Approvers are asked over their Apprise contacts, reminded, escalated to, and proposers told the
outcome; every notice is recorded in the change log and never sent twice."""

from __future__ import annotations

from pathlib import Path

from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.notify import ApprovalNotifier
from plantpulse.approvals.service import Plant, adopt, decide, propose
from plantpulse.config import StoreConfig, load_config
from plantpulse.httpserve import free_port
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.store import open_store
from tests.approvals.helpers import T0, edit, make_plant

H = 3600 * 10**9


async def test_ask_remind_escalate_and_tell_the_outcome(
    tmp_path: Path, store_config: StoreConfig, change_log: ChangeLog
) -> None:
    async with PushReceiver() as rx:
        base = rx.url.rsplit("/", 1)[0]
        contacts = {"吴芳": f"{base}/wufang", "陈工": f"{base}/chen", "李娜": f"{base}/lina",
                    "郑浩": f"json://127.0.0.1:{free_port()}/nobody-listens"}  # fmt: skip
        path = make_plant(tmp_path, store_config, contacts)
        plant = Plant.of(load_config(path))
        clock = ManualClock(T0)
        await adopt(plant, change_log, now=T0)
        edit(tmp_path / "rules" / "weld.yaml", "limit: 5}", "limit: 8}")
        store = open_store(store_config)
        await store.open()
        try:
            c = await propose(plant, change_log, store, [tmp_path / "rules" / "weld.yaml"], by="吴芳",
                              reason="误报太多", now=T0)  # fmt: skip
        finally:
            await store.close()
        n = ApprovalNotifier(plant, change_log, clock=clock, page_url="https://pp.example/")

        def got() -> list[tuple[str, str]]:
            return [(r.path, r.body["title"]) for r in rx.received]

        assert await n.step() == 1
        assert got() == [("/chen", f"[approval] change #{c.id} waits for you (quality_engineer)")]
        body = rx.received[0].body["message"]
        assert "Proposed by 吴芳: 误报太多" in body and "weld-current: deviation.limit 5 -> 8" in body
        assert f"https://pp.example/approvals/{c.id}" in body
        assert await n.step() == 0, "asked once"
        assert n.next_due == T0 + 4 * H

        clock.set(T0 + 4 * H)
        assert await n.step() == 1
        assert got()[-1] == ("/chen", f"[approval, reminder] change #{c.id} waits for you (quality_engineer)"
                                      " since 2026-01-01 08:00")  # fmt: skip
        clock.set(T0 + 24 * H)
        assert await n.step() == 2  # the reminder due at 8 h... and the escalation to the director
        records = await change_log.records()
        escalated = [r.data for r in records if r.action == "notified" and r.data["kind"] == "escalation"]
        assert escalated == [
            {"level": 0, "kind": "escalation", "to": ["郑浩"], "delivered": [], "failed": ["郑浩"]}
        ]

        await decide(plant, change_log, c.id, by="陈工", approve=True, text=None, now=T0 + 25 * H)
        clock.set(T0 + 25 * H)
        assert await n.step() == 1
        assert got()[-1] == ("/lina", f"[approval] change #{c.id} waits for you (team_lead)")
        await decide(plant, change_log, c.id, by="李娜", approve=True, text=None, now=T0 + 26 * H)
        await decide(plant, change_log, c.id, by="郑浩", approve=True, text=None, now=T0 + 26 * H)
        clock.set(T0 + 26 * H)
        before = len(rx.received)
        await n.step()
        told = sorted(r.path for r in rx.received[before:] if "approved and live" in r.body["title"])
        assert told == ["/chen", "/lina", "/wufang"]
        assert await n.step() == 0 and n.next_due is None

        # a restart resumes from the log: nothing is sent again
        again = ApprovalNotifier(plant, change_log, clock=clock)
        assert await again.step() == 0
