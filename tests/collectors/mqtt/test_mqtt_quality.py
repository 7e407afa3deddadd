"""Watchdog, gap markers and the historical split (pure, stepped time)."""

from __future__ import annotations

import math

from plantpulse.collectors.quality import GapMarker, Historical, Watchdog
from plantpulse.samples import Quality, Sample

S = 1_000_000_000


def test_watchdog_marks_stale_once_per_outage() -> None:
    wd = Watchdog({"a": 2 * S}, default=None)
    wd.observe([Sample(10 * S, "a", 1.0), Sample(10 * S, "b", 1.0)])
    assert wd.due(12 * S) == []  # exactly the interval: not yet
    stale = wd.due(12 * S + 1)
    assert [(s.ts, s.tag, s.quality) for s in stale] == [(12 * S, "a", Quality.BAD)]
    assert math.isnan(stale[0].value)
    assert wd.due(20 * S) == []  # once per outage
    assert wd.stale_tags() == ["a"]
    wd.observe([Sample(21 * S, "a", 2.0)])
    assert wd.stale_tags() == [] and wd.next_due() == 23 * S + 1
    assert [s.ts for s in wd.due(24 * S)] == [23 * S]


def test_gap_marker_is_an_uncertain_sample() -> None:
    s = GapMarker("weld-mqtt", 5 * S, 7 * S + S // 2).sample()
    assert (s.ts, s.tag, s.value, s.quality) == (7 * S + S // 2, "_gaps/weld-mqtt", 2.5, Quality.UNCERTAIN)


def test_historical_split_by_newest_live_sample_per_tag() -> None:
    h = Historical()
    live, old = h.split([Sample(10, "a", 1), Sample(12, "a", 2), Sample(5, "b", 1)])
    assert len(live) == 3 and old == []
    live, old = h.split([Sample(11, "a", 3), Sample(12, "a", 4), Sample(4, "b", 2), Sample(13, "a", 5)])
    assert [s.value for s in live] == [4, 5] and [s.value for s in old] == [3, 2]
