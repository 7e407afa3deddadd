"""``Store.alerts_by_id``, on every backend of the contract suite: the notifier's one read per
poll over all its active escalations (acknowledgements made elsewhere)."""

from __future__ import annotations

import uuid

from plantpulse.alerts import AlertEvent
from plantpulse.store import Store

S = 10**9
T0 = 1_699_999_980 * S


def raised(i: int) -> AlertEvent:
    tag = f"线体1/焊机{i:02d}/电流"
    return AlertEvent("raised", "weld-dev", tag, "high", T0 + i * S, T0 + i * S, 200.0 + i, f"偏差 #{i}")


async def test_alerts_by_id_reads_the_known_ones_in_one_call(store: Store) -> None:
    events = [raised(i) for i in range(600)]  # beyond any per-statement parameter limit
    await store.write_alert_events(events, uuid.uuid4().hex, {events[0].alert_id: {"operator": ["张伟"]}})
    await store.acknowledge(events[3].alert_id, "李娜", T0 + 10 * S, "换焊丝")
    wanted = [e.alert_id for e in events[::2]] + ["no-such-alert"]
    got = {a.id: a for a in await store.alerts_by_id(wanted)}
    assert set(got) == {e.alert_id for e in events[::2]}
    assert got[events[0].alert_id].on_shift == {"operator": ["张伟"]}
    assert got[events[4].alert_id].tag == "线体1/焊机04/电流"
    assert (await store.alerts_by_id([events[3].alert_id]))[0].acked_by == "李娜"
    assert await store.alerts_by_id([]) == []
