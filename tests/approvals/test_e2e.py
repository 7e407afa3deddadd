"""The whole chain on SQLite and PostgreSQL with the real pipeline, spool and store: a fault is
judged by the old threshold, a change is proposed and signed by three levels (wrong role,
self-approval and out of order refused), the running pipeline takes the new version at the
next batch, the next fault is judged by the new threshold, and a ``for`` window pending on an
unchanged rule across the switch fires on time. Alerts record the version that raised them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.live import LiveRules
from plantpulse.approvals.service import Plant, Refused, decide, propose
from plantpulse.config import SpoolConfig, StoreConfig, load_config
from plantpulse.rules.engine import Engine
from plantpulse.samples import TagRegistry
from plantpulse.store import Store
from plantpulse.store.spool import SpoolWriter
from plantpulse.stream.pipeline import Pipeline
from tests.approvals.helpers import CUR, SP, T0, TEMP, Recorded, S, approve_edit, at, edit, make_plant, step

pytestmark = pytest.mark.slow


@dataclass
class Running:
    plant: Plant
    live: LiveRules
    writer: SpoolWriter
    pipeline: Pipeline
    notifier: Recorded


@pytest.fixture
async def running(
    tmp_path: Path, store_config: StoreConfig, change_log: ChangeLog, store: Store
) -> AsyncIterator[Running]:
    """The pipeline with approvals on: the baseline's rules, the spool, the store."""
    plant = Plant.of(load_config(make_plant(tmp_path, store_config)))
    live = await LiveRules.start(plant, change_log, now=T0)
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool"), open_store=False)
    await writer.start()
    tags = TagRegistry()
    notifier = Recorded()
    pipeline = Pipeline(Engine(live.rules, tags), tags, writer, notifier, rules=live)
    try:
        yield Running(plant, live, writer, pipeline, notifier)
    finally:
        await writer.stop()


async def test_propose_approve_three_levels_and_the_running_pipeline_switches(
    tmp_path: Path, change_log: ChangeLog, store: Store, running: Running
) -> None:
    plant, live, p = running.plant, running.live, running.pipeline
    # before: 6 A off the setpoint is a fault (limit 5 for 3 s)
    await step(p, [at(0, SP, 200.0), at(0, CUR, 206.0), at(0, TEMP, 60.0)])
    raised = await step(p, [at(3, CUR, 206.0)])
    assert [(e.kind, e.rule, e.raised_at - T0, e.rule_version) for e in raised] == [
        ("raised", "weld-current", 3 * S, 1)
    ]
    await step(p, [at(4, CUR, 200.0), at(4, TEMP, 90.0)])  # cleared; the temperature pends until 14 s

    # the change: limit 5 -> 8, through three levels
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    c = await propose(plant, change_log, store, [rules], by="吴芳", reason="误报太多", now=T0 + 5 * S)
    refusals = [
        (
            "王强",
            "王强 is not a quality_engineer: level 1 of 3 (quality_engineer) of change #2 needs one",
        ),
        ("吴芳", "吴芳 proposed change #2 and cannot approve it"),
        ("郑浩", "out of order: change #2 waits for level 1 of 3 (quality_engineer) before level 3 of 3"),
    ]
    for who, why in refusals:
        with pytest.raises(Refused) as e:
            await decide(plant, change_log, c.id, by=who, approve=True, text=None, now=T0 + 5 * S)
        assert str(e.value).startswith(why)
    for who in ("陈工", "李娜"):
        await decide(plant, change_log, c.id, by=who, approve=True, text=None, now=T0 + 5 * S)
        assert await live.poll() is False
    await decide(plant, change_log, c.id, by="郑浩", approve=True, text=None, now=T0 + 5 * S)
    assert await live.poll() is True  # what live.run does every approvals.poll

    # the very next batch is judged by the new limit: 6 A off is no fault any more
    assert await step(p, [at(5, CUR, 206.0), at(5, TEMP, 90.0)]) == []
    assert await step(p, [at(8, CUR, 206.0)]) == []  # would have raised at 8 s under the old limit
    assert await step(p, [at(9, CUR, 210.0)]) == []
    raised = await step(p, [at(12, CUR, 210.0)])
    assert [(e.rule, e.raised_at - T0, e.rule_version) for e in raised] == [("weld-current", 12 * S, 2)]
    # the unchanged rule's window, pending since 4 s across the switch, fires at exactly 14 s
    assert await step(p, beat=13) == []
    raised = await step(p, beat=15)
    assert [(e.rule, e.raised_at - T0, e.rule_version) for e in raised] == [("weld-temp", 14 * S, 1)]
    await running.writer.flush()
    stored = sorted((a.rule, (a.raised_at - T0) // S, a.rule_version) for a in await store.alerts())
    assert stored == [("weld-current", 3, 1), ("weld-current", 12, 2), ("weld-temp", 14, 1)]
    await live.poll()
    applied = [r.data for r in await change_log.records() if r.action == "applied"]
    assert [(a["fresh"], a["kept"], a["closed"], a["watermark"]) for a in applied] == [(1, 1, 0, T0 + 4 * S)]


async def test_an_active_alert_of_a_changed_rule_is_closed_at_the_switch(
    tmp_path: Path, change_log: ChangeLog, store: Store, running: Running
) -> None:
    plant, live, p = running.plant, running.live, running.pipeline
    await step(p, [at(0, SP, 200.0), at(0, CUR, 206.0)])
    assert len(await step(p, [at(3, CUR, 206.0)])) == 1
    await approve_edit(plant, change_log, store, tmp_path, old="limit: 5}", new="limit: 8}")
    await live.poll()
    events = await step(p, [at(4, CUR, 206.0)])
    assert [(e.kind, e.rule, e.at - T0) for e in events] == [("cleared", "weld-current", 3 * S)]
    assert running.notifier.pushed[-1] == ("cleared", "weld-current", 3 * S)  # pushed, like any clear
    await running.writer.flush()
    (alert,) = await store.alerts()
    assert (alert.cleared_at, alert.rule_version) == (T0 + 3 * S, 1)
    journal = [e.action for e in await store.journal(alert.id)]
    assert journal == ["raised", "cleared"]


async def test_a_raise_after_a_switch_to_a_longer_for_has_its_whole_trend(
    tmp_path: Path, change_log: ChangeLog, store: Store, running: Running
) -> None:
    """The pipeline holds samples for the longest ``for`` of the rules it runs: after a switch
    to a longer one, a raise's trend covers its whole window."""
    plant, live, p = running.plant, running.live, running.pipeline
    await step(p, [at(0, SP, 200.0), at(0, CUR, 200.0)])
    await approve_edit(plant, change_log, store, tmp_path, old="for: 3s", new="for: 15s")
    await live.poll()
    for t in range(1, 16):
        await step(p, [at(t, CUR, 210.0 + t)])
    (raised,) = await step(p, [at(16, CUR, 230.0)])
    assert (raised.raised_at - T0, raised.rule_version) == (16 * S, 2)
    assert raised.trend is not None
    assert (raised.trend.n, raised.trend.first, raised.trend.last) == (16, 211.0, 230.0)
