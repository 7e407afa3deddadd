"""Per-channel delivery counters, read as a snapshot (what /metrics will export): sent, failed,
dropped (no such contact any more), deferred (queue full: waited in the outbox), queued."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from service_helpers import T0, raised, running, team_plant

from plantpulse.notifier.channels import ChannelStats
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.receiver import PushReceiver


async def test_channel_counters_are_a_snapshot_per_channel(tmp_path: Path, port: int) -> None:
    async with PushReceiver() as rx:
        plant = team_plant(rx.url)
        people = dict(plant.team.people)
        dead = people["张伟"].model_copy(
            update={"contacts": {"wecom": SecretStr(f"json://127.0.0.1:{port}/x")}}
        )
        team = plant.team.model_copy(update={"people": {**people, "张伟": dead}})
        plant = plant.model_copy(update={"team": team})
        async with running(
            tmp_path / "pp.db", plant, ManualClock(T0), retries=2, queue_size=1, workers=1
        ) as r:
            await r.raise_alert(raised(0))
            await r.raise_alert(raised(1))
            await rx.wait_for(4)  # 李娜 twice, then 吴芳 twice (step 1 at once: 张伟 unreachable)
            await r.notifier.idle()
            stats = r.notifier.stats()
    wecom = stats.channels["wecom"]
    assert (wecom.sent, wecom.failed, wecom.dropped, wecom.queued, wecom.attempts_failed) == (2, 2, 0, 0, 4)
    assert wecom.deferred > 0  # a queue of one: the rest waited in the outbox, nothing lost
    assert stats.channels["email"] == ChannelStats(
        queued=0, sent=2, failed=0, dropped=0, deferred=0, attempts_failed=0
    )
    assert stats.pending == 2


async def test_a_row_whose_contact_is_gone_after_a_restart_is_dropped_and_escalates(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        plant, clock = team_plant(rx.url), ManualClock(T0)
        db = tmp_path / "pp.db"
        async with running(db, plant, clock, abort=True, workers=0) as r:  # saved, never delivered
            await r.raise_alert(raised())
            await r.notifier.idle(delivered=False)
        people = dict(plant.team.people)
        gone = people["张伟"].model_copy(update={"contacts": {}})
        plant = plant.model_copy(
            update={"team": plant.team.model_copy(update={"people": {**people, "张伟": gone}})}
        )
        async with running(db, plant, clock) as r:
            await rx.wait_for(2)  # 李娜's row, and step 1 at once since 张伟 cannot be reached
            await r.notifier.idle()
            assert r.notifier.stats().channels["wecom"].dropped == 1
            assert sorted(x.path.rpartition("/")[2] for x in rx.received) == ["lina", "wufang"]
