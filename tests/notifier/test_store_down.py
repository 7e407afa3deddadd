"""Notifications do not depend on the store: built by ``start_notifying`` as ``plantpulse run`` does,
with the store a PostgreSQL URL on a closed port (down for the whole test), journal through a real
SpoolWriter, pushes to a local PushReceiver. The outbox is the local file in the state directory."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent, Trend
from plantpulse.config import PlantConfig
from plantpulse.notifier.clock import Clock, ManualClock
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.notifier.runtime import Notifying, start_notifying
from plantpulse.people.roster import Roster
from plantpulse.store import open_store
from plantpulse.store.spool import KIND_JOURNAL, SpoolWriter, read_records

S = 10**9
T0 = 1_796_083_200 * S
ENV = {"PLANTPULSE_ACK_SECRET": "outage-secret-0123456789abcdef"}

PLANT = """\
site: {{name: 焊装车间, timezone: Asia/Shanghai}}
store: {{url: "postgresql://pp@127.0.0.1:{port}/plant", connect_timeout: 1s, spool: {{dir: "{state}"}}}}
team:
  language: zh
  people:
    张伟: {{roles: [operator], contacts: {{wecom: "{push}/zhangwei"}}}}
    李娜: {{roles: [team_lead], contacts: {{wecom: "{push}/lina"}}}}
    郑浩: {{roles: [workshop_director], contacts: {{wecom: "{push}/zhenghao"}}}}
  assignments:
    - {{asset: "*", roles: [operator], people: [张伟]}}
    - {{asset: "*", roles: [team_lead], people: [李娜]}}
    - {{asset: "*", roles: [workshop_director], people: [郑浩]}}
  policies:
    default:
      steps:
        - {{after: 0s, to: [operator]}}
        - {{after: {step2}, to: [team_lead]}}
        - {{after: {step3}, to: [workshop_director]}}
  links: {{ttl: 1h, base_url: "http://127.0.0.1:1/ack"}}
"""


def plant_for(rx: PushReceiver, port: int, state: Path, step2: str = "1s", step3: str = "2s") -> PlantConfig:
    push = rx.url.rpartition("/")[0]
    text = PLANT.format(port=port, state=state, push=push, step2=step2, step3=step3)
    return yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=text))


def raised(at: int, value: float = 206.2) -> AlertEvent:
    trend = Trend(first=200.0, last=206.2, min=199.5, max=206.2, n=30, window=3 * S)
    return AlertEvent("raised", "weld-current-deviation", "line1/weld01/current", "high", at, at, value,
                      "焊接电流偏差 +6.2 A", window=3 * S, trend=trend)  # fmt: skip


def person(r: Received) -> str:
    return r.path.rpartition("/")[2]


@asynccontextmanager
async def notifying(
    plant: PlantConfig, clock: Clock | None = None
) -> AsyncIterator[tuple[Notifying, SpoolWriter]]:
    """What run_pipeline builds: the (unreachable) store, its spool writer, the notifier."""
    store = open_store(plant.store)
    writer = SpoolWriter(store, plant.store.spool_config, backoff=(0.05, 0.2))
    await writer.start()
    n = await start_notifying(plant, store, journal=writer, env=ENV, clock=clock, backoff=0.001)
    try:
        yield n, writer
    finally:
        await n.stop()
        await writer.stop(drain_timeout=0.1)


def submit(n: Notifying, plant: PlantConfig, ev: AlertEvent) -> None:
    assert n.notifier is not None
    n.notifier.submit(
        [ev], {ev.alert_id: Roster(plant.team, plant.site.timezone).on_shift(ev.asset, ev.raised_at)}
    )


async def test_pushes_and_escalation_steps_go_out_on_time_while_the_store_is_down(
    tmp_path: Path, port: int
) -> None:
    arrived: list[tuple[float, str]] = []
    async with PushReceiver(on_push=lambda r: arrived.append((time.monotonic(), person(r)))) as rx:
        plant = plant_for(rx, port, tmp_path / "state")
        async with notifying(plant) as (n, writer):
            submitted = time.monotonic()
            submit(n, plant, raised(time.time_ns()))
            await rx.wait_for(3)
            assert n.escalation is not None
            await n.escalation.idle()
            assert not writer.stats().store_available
    (t1, p1), (t2, p2), (t3, p3) = arrived
    assert (p1, p2, p3) == ("zhangwei", "lina", "zhenghao")
    assert t1 - submitted < 1.0  # the raise, at once
    assert 0.95 <= t2 - submitted < 1.6  # step 2 at its 1 s
    assert 1.95 <= t3 - submitted < 2.6  # step 3 at its 2 s, not with step 2
    journal = [json.loads(body) for kind, _, body in read_records(tmp_path / "state") if kind == KIND_JOURNAL]
    actions = [e["action"] for batch in journal for e in batch]
    assert actions == ["notified", "escalated", "escalated"]  # spooled for the store, never lost


async def test_escalation_resumes_from_the_outbox_alone_after_each_crash(tmp_path: Path, port: int) -> None:
    """Killed (``abort``, the crash double) while a step is pending, twice, restarted with the
    store still unreachable: every later step is sent exactly once at its time, and says what
    the raise said (value, trend, who was on shift) without reading the store."""
    async with PushReceiver() as rx:
        plant = plant_for(rx, port, tmp_path / "state", step2="15m", step3="45m")
        clock = ManualClock(T0)
        ev = raised(T0)
        async with notifying(plant, clock) as (n, _):
            submit(n, plant, ev)
            await rx.wait_for(1)
            assert n.escalation is not None
            await n.escalation.idle()
            clock.set(T0 + 10 * 60 * S)
            await n.escalation.abort()  # crash: nothing drained
        clock.set(T0 + 20 * 60 * S)  # down for ten minutes; step 2 became due meanwhile
        async with notifying(plant, clock) as (n, _):
            assert n.escalation is not None
            await rx.wait_for(2)
            await n.escalation.idle()
            assert [person(r) for r in rx.received] == ["zhangwei", "lina"]
            await n.escalation.abort()
        async with notifying(plant, clock) as (n, _):
            assert n.escalation is not None
            await n.escalation.idle()
            assert len(rx.received) == 2  # step 2 not again
            clock.set(T0 + 45 * 60 * S - 1)
            await n.escalation.idle()
            assert len(rx.received) == 2
            clock.set(T0 + 45 * 60 * S)
            await rx.wait_for(3)
            await n.escalation.idle()
            assert list(n.escalation.pending) == [ev.alert_id]
    assert [person(r) for r in rx.received] == ["zhangwei", "lina", "zhenghao"]
    step2 = rx.received[1].body["message"]
    assert "数值:206.2" in step2 and "当班:操作工:张伟" in step2
    assert "趋势:近 3s 最小 199.5,最大 206.2,最新 206.2(上升 ↑)" in step2
