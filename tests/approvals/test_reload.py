"""Hot reload over the real engine: unchanged streams go on (a pending ``for`` window fires on
time), changed rules start fresh from the held values with their active alerts closed,
presentation-only changes carry the state over, removed rules close their alerts."""

from __future__ import annotations

from plantpulse.alerts import AlertEvent
from plantpulse.approvals.reload import reload
from plantpulse.approvals.ruleset import RuleSet
from plantpulse.rules.engine import Engine
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from tests.approvals.helpers import RULES

S = 10**9
T0 = 1_767_225_600 * S
CUR, SP, TEMP = "line1/weld01/current", "line1/weld01/current_sp", "line1/weld01/temp"


def rs(text: str, change: int | None = None) -> RuleSet:
    return RuleSet.from_texts({"rules/weld.yaml": text}, change=change)


def feed(eng: Engine, tags: TagRegistry, *samples: tuple[int, str, float]) -> list[AlertEvent]:
    return eng.process(SampleBatch.from_samples(tags, [Sample(T0 + t * S, n, v) for t, n, v in samples]))


def kinds(events: list[AlertEvent]) -> list[tuple[str, str, int, int]]:
    return [(e.kind, e.rule, (e.raised_at - T0) // S, (e.at - T0) // S) for e in events]


def test_unchanged_streams_go_on_and_changed_ones_start_fresh_from_held_values() -> None:
    tags = TagRegistry()
    old = rs(RULES)
    eng = Engine(list(old.rules), tags)
    feed(eng, tags, (0, SP, 200.0), (0, CUR, 200.0), (0, TEMP, 60.0))
    assert feed(eng, tags, (1, CUR, 206.0), (1, TEMP, 90.0)) == []  # both pending
    assert kinds(feed(eng, tags, (4, CUR, 206.0), (4, TEMP, 90.0))) == [("raised", "weld-current", 4, 4)]
    new = rs(RULES.replace("limit: 5}", "limit: 8}"), change=2)
    r = reload(eng.snapshot(), old, new, tags)
    assert (r.kept, r.carried, r.fresh, r.removed) == (["weld-temp"], [], ["weld-current"], [])
    # the active alert of the changed rule is closed at the switch (the watermark: 4 s)
    assert kinds(r.closed) == [("cleared", "weld-current", 4, 4)]
    assert r.closed[0].message == "closed at a rule change: rule weld-current changed by change #2"
    assert r.closed[0].value == 206.0
    eng = r.engine
    # 6 A off is no fault under the new limit; the setpoint is only known from before the switch
    assert feed(eng, tags, (5, CUR, 206.0)) == []
    assert feed(eng, tags, (6, CUR, 210.0)) == []
    # the temperature window pending since 1 s fires at exactly 1 + 10 s; the new limit at 6 + 3 s
    events = feed(eng, tags, (9, CUR, 210.0), (11, TEMP, 90.0))
    assert kinds(events) == [("raised", "weld-current", 9, 9), ("raised", "weld-temp", 11, 11)]


def test_a_presentation_change_carries_the_state_and_a_removal_closes_alerts() -> None:
    tags = TagRegistry()
    old = rs(RULES)
    eng = Engine(list(old.rules), tags)
    feed(eng, tags, (0, SP, 200.0), (0, CUR, 210.0), (0, TEMP, 90.0))
    assert kinds(feed(eng, tags, (3, CUR, 210.0))) == [("raised", "weld-current", 3, 3)]
    text = RULES.replace("severity: high", "severity: critical\n    message: 电流 {value:g}")
    without_temp = text[: text.index("  - id: weld-temp")]
    r = reload(eng.snapshot(), old, rs(without_temp), tags)
    assert (r.kept, r.carried, r.fresh, r.removed) == ([], ["weld-current"], [], ["weld-temp"])
    assert r.closed == []  # weld-temp was only pending: nothing to close
    eng = r.engine
    assert feed(eng, tags, (4, CUR, 210.0)) == []  # still the same active alert
    cleared = feed(eng, tags, (5, CUR, 200.0))
    assert kinds(cleared) == [("cleared", "weld-current", 3, 5)]
    raised = feed(eng, tags, (6, CUR, 210.0), (9, CUR, 210.0))
    assert [(e.severity, e.message) for e in raised] == [("critical", "电流 210")]


def test_a_removed_rule_closes_its_active_alerts_and_an_added_rule_starts_from_held_values() -> None:
    tags = TagRegistry()
    old = rs(RULES)
    eng = Engine(list(old.rules), tags)
    feed(eng, tags, (0, SP, 200.0), (0, CUR, 200.0), (0, TEMP, 90.0))
    assert kinds(feed(eng, tags, (10, TEMP, 90.0))) == [("raised", "weld-temp", 10, 10)]
    added = "  - id: weld-hot\n    tag: line1/weld01/temp\n    above: 85\n    severity: low\n"
    new = RULES[: RULES.index("  - id: weld-temp")] + added
    r = reload(eng.snapshot(), old, rs(new, change=3), tags)
    assert (r.fresh, r.removed) == (["weld-hot"], ["weld-temp"])
    assert kinds(r.closed) == [("cleared", "weld-temp", 10, 10)]
    assert r.closed[0].message == "closed at a rule change: rule weld-temp removed by change #3"
    assert kinds(r.engine.advance(T0 + 11 * S)) == []
    assert kinds(feed(r.engine, tags, (12, TEMP, 91.0))) == [("raised", "weld-hot", 12, 12)]


def test_a_snapshot_of_nothing_reloads_to_an_empty_engine() -> None:
    tags = TagRegistry()
    old = rs(RULES)
    r = reload(Engine(list(old.rules), tags).snapshot(), old, rs(RULES.replace("80", "85")), tags)
    assert r.closed == [] and r.watermark is None and r.fresh == ["weld-temp"]
    assert r.engine.stats.samples == 0
