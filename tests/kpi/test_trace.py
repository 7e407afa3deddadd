"""Parameter-change trace: changes of good values only, the first value a baseline, samples before
``start`` baselines too; the same changes whatever the batches; the on-shift snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from plantpulse.kpi.trace import ParamChange, ParamTracker, trace, with_on_shift
from plantpulse.people.roster import Roster
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from tests.kpi.helpers import plant

S = 1_000_000_000
NAN = float("nan")
BAD, GOOD = int(Quality.BAD), int(Quality.GOOD)


def t(hh: int, mm: int = 0) -> int:
    return int(datetime(2026, 3, 2, hh, mm, tzinfo=UTC).timestamp()) * S


ROWS = [
    (t(7), "l/a/current_sp", 180.0, GOOD),  # before start: baseline
    (t(8, 10), "l/a/current_sp", 180.0, GOOD),  # unchanged
    (t(8, 20), "l/a/current_sp", NAN, BAD),  # an outage is no edit
    (t(8, 30), "l/a/current_sp", 190.0, GOOD),  # 180 -> 190
    (t(8, 40), "l/b/current_sp", 200.0, GOOD),  # first value seen: baseline
    (t(8, 50), "l/b/current_sp", 210.0, GOOD),  # 200 -> 210
    (t(8, 55), "l/a/current", 999.0, GOOD),  # not a parameter
    (t(9), "l/a/current_sp", 0.0, BAD),  # bad with a value: still no edit
    (t(9, 10), "l/a/current_sp", 185.0, GOOD),  # 190 -> 185
]
WANT = [
    (t(8, 30), "l/a/current_sp", 180.0, 190.0),
    (t(8, 50), "l/b/current_sp", 200.0, 210.0),
    (t(9, 10), "l/a/current_sp", 190.0, 185.0),
]


def batch(tags: TagRegistry, rows: list[tuple[int, str, float, int]]) -> SampleBatch:
    return SampleBatch.make(
        tags, [r[0] for r in rows], [tags.id(r[1]) for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )


def _plain(changes: list[ParamChange]) -> list[tuple[int, str, float, float]]:
    return [(c.at, c.tag, c.old, c.new) for c in changes]


def test_changes_of_good_values() -> None:
    tags = TagRegistry()
    assert _plain(trace(["l/*/current_sp"], tags, batch(tags, ROWS[::-1]), start=t(8))) == WANT


def test_any_cut_and_a_restart_give_the_same_changes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        tags = TagRegistry()
        tracker = ParamTracker(["l/*/current_sp"], tags, start=t(8))
        cuts = sorted(rng.choice(np.arange(1, len(ROWS)), size=3, replace=False).tolist())
        got: list[ParamChange] = []
        for a, b in zip([0, *cuts], [*cuts, len(ROWS)], strict=True):
            got += tracker.process(batch(tags, ROWS[a:b]))
            tags = TagRegistry(["x", *tags.names])  # another numbering after the restart
            tracker = ParamTracker.load(
                ["l/*/current_sp"], tags, t(8), json.loads(json.dumps(tracker.dump()))
            )
        assert _plain(got) == WANT


def test_each_change_carries_who_was_on_shift() -> None:
    p = plant()
    roster = Roster(p.team, p.site.timezone)
    tags = TagRegistry()
    changes = with_on_shift(trace(["l/*/current_sp"], tags, batch(tags, ROWS), start=t(8)), roster)
    # 2026-03-02 08:30 UTC is 09:30 in Berlin: the early shift; rotation day 56 -> "ABC"[56 % 3] = C
    assert changes[0].on_shift == {"operator": ["陈刚"], "team_lead": ["刘洋"], "quality_engineer": ["吴芳"]}
    assert changes[0].row()["at"] == "2026-03-02T08:30:00.000Z"
