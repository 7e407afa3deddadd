"""The running pipeline's side: the approved set is picked up from the log, swapped in at a batch
boundary, the switch recorded, and raises stamped with their rule's version."""

from __future__ import annotations

from pathlib import Path

from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.live import LiveRules
from plantpulse.approvals.service import Plant, decide, propose
from plantpulse.config import StoreConfig, load_config
from plantpulse.rules.engine import Engine
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from plantpulse.store import open_store
from tests.approvals.helpers import T0, edit, make_plant

S = 10**9


async def test_a_new_version_is_swapped_in_at_the_boundary_and_recorded(
    tmp_path: Path, store_config: StoreConfig, change_log: ChangeLog
) -> None:
    plant = Plant.of(load_config(make_plant(tmp_path, store_config)))
    live = await LiveRules.start(plant, change_log, now=T0, clock=lambda: T0 + 99 * S)
    assert [r.id for r in live.rules] == ["weld-current", "weld-temp"]
    assert live.ruleset.versions == {"weld-current": 1, "weld-temp": 1} and live.ruleset.change == 1
    assert await live.poll() is False and live.at_boundary(Engine(live.rules, TagRegistry())) is None

    tags = TagRegistry()
    engine = Engine(live.rules, tags)
    batch = [Sample(T0, "line1/weld01/current_sp", 200.0), Sample(T0, "line1/weld01/current", 200.0)]
    engine.process(SampleBatch.from_samples(tags, batch))

    edit(tmp_path / "rules" / "weld.yaml", "limit: 5}", "limit: 8}")
    store = open_store(store_config)
    await store.open()
    try:
        c = await propose(
            plant, change_log, store, [tmp_path / "rules" / "weld.yaml"], by="吴芳", reason="x", now=T0
        )
    finally:
        await store.close()
    for who in ("陈工", "李娜"):
        await decide(plant, change_log, c.id, by=who, approve=True, text=None, now=T0)
    assert await live.poll() is False, "not live before the last level"
    await decide(plant, change_log, c.id, by="郑浩", approve=True, text=None, now=T0)
    assert await live.poll() is True and live.pending is not None and live.pending.change == 2

    swap = live.at_boundary(engine)
    assert swap is not None and (swap.fresh, swap.kept) == (["weld-current"], ["weld-temp"])
    assert live.ruleset.versions == {"weld-current": 2, "weld-temp": 1}
    events = swap.engine.process(
        SampleBatch.from_samples(tags, [Sample(T0 + t * S, "line1/weld01/current", 210.0) for t in (1, 4)])
    )
    assert [(e.rule, e.rule_version) for e in live.stamp(events)] == [("weld-current", 2)]
    assert live.at_boundary(swap.engine) is None

    await live.poll()  # records the switch
    applied = [r for r in await change_log.records() if r.action == "applied"]
    assert len(applied) == 1 and applied[0].change == 2 and applied[0].at == T0 + 99 * S
    assert applied[0].data["process"] == live.process
    assert (applied[0].data["kept"], applied[0].data["fresh"], applied[0].data["closed"]) == (1, 1, 0)
