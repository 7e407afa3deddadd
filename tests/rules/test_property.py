"""The engine against the naive reference evaluator on random series and random batching."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantpulse.samples import Quality, Sample

from .helpers import S, alerts_of, batches, rules, run
from .reference import Reference, reference_alerts

RULES = rules(
    """
rules:
  - {id: hot, tag: "*/x", above: 10, for: 2s, clear: {limit: 9, for: 1s}, severity: high}
  - {id: cold, tag: "*/x", below: 10, severity: low}
  - {id: band, tag: "*/x", outside: [9, 11], clear: {limit: [9.5, 10.5], for: 1s}, for: 1s, severity: medium}
  - id: dev
    tag: "*/x"
    deviation: {setpoint: "{asset}/sp", limit: 1}
    clear: {limit: 0.5}
    for: 1s
    severity: high
  - {id: devc, tag: a/x, deviation: {setpoint: 10, limit: 1}, for: 3s, severity: low}
  - {id: rate, tag: "*/x", rate: {per: 1s, above: 1.5}, clear: {limit: 0.5, for: 1s}, severity: low}
  - {id: fall, tag: b/x, rate: {per: 2s, below: -1}, for: 1s, severity: low}
  - {id: stale, tag: "*/x", stale: 3s, severity: low}
  - {id: stale2, tag: a/sp, stale: 2s, for: 1s, severity: low}
  - id: ex
    tag: "*/x"
    expr: "value > y + 1 and y >= 9 or not (value < 12)"
    for: 1s
    clear: {for: 2s}
    severity: critical
  - id: ex2
    tag: a/x
    expr: "min(value, w) * 2 > max(abs(sp - 10), 1) + 19"
    vars: {w: b/x}
    severity: low
"""
)

TAGS = ["a/x", "b/x", "a/sp", "b/sp", "a/y", "b/y"]
VALUES = [8.0, 8.9, 9.0, 9.4, 9.5, 10.0, 10.5, 10.6, 11.0, 11.5, 12.0, 13.0, math.nan]


@st.composite
def series(draw: st.DrawFn) -> tuple[list[Sample], list[int], int | None]:
    n = draw(st.integers(1, 60))
    t = 0
    samples = []
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3, 4])) * S // 2
        tag = draw(st.sampled_from(TAGS))
        value = draw(st.sampled_from(VALUES))
        q = draw(st.sampled_from([Quality.GOOD] * 6 + [Quality.UNCERTAIN, Quality.BAD]))
        samples.append(Sample(t, tag, value, q))
    cuts = draw(st.lists(st.integers(0, n), max_size=6))
    restore = draw(st.one_of(st.none(), st.integers(0, len(set(cuts)) + 1)))
    return samples, cuts, restore


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
def test_engine_matches_reference(case: tuple[list[Sample], list[int], int | None]) -> None:
    samples, cuts, restore = case
    expected = reference_alerts(RULES, samples)
    got = alerts_of(run(RULES, samples, cuts, restore_at=restore))
    assert got == expected


@settings(max_examples=30, deadline=None)
@given(series())
def test_batching_does_not_matter(case: tuple[list[Sample], list[int], int | None]) -> None:
    samples, _, _ = case
    whole = run(RULES, samples)
    one_by_one = run(RULES, samples, cuts=list(range(len(samples))))
    assert sorted(map(repr, whole)) == sorted(map(repr, one_by_one))  # repr: NaN == NaN


@st.composite
def heartbeats(draw: st.DrawFn) -> tuple[list[Sample], list[int], int | None, dict[int, int]]:
    """A series, and after some batches a watermark between that batch's last sample and the
    next one's, often on the half-second grid where ``for`` deadlines fall."""
    samples, cuts, restore = draw(series())
    beats = {}
    for i, (_, b) in enumerate(batches(samples, cuts)):
        if 0 < b < len(samples) and draw(st.booleans()):
            lo, hi = samples[b - 1].ts, samples[b].ts
            beats[i] = draw(st.sampled_from(sorted({lo, hi, *range(lo, hi, S // 2), (lo + hi) // 2})))
    return samples, cuts, restore, beats


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heartbeats())
def test_heartbeats_match_reference(case: tuple[list[Sample], list[int], int | None, dict[int, int]]) -> None:
    """The watermark alone fires (and clears) what is due, at the deadline, never before."""
    samples, cuts, restore, beats = case
    ref = Reference(RULES)
    for i, (a, b) in enumerate(batches(samples, cuts)):
        for s in samples[a:b]:
            ref.feed(s)
        if i in beats:
            ref.tick(beats[i])
    got = alerts_of(run(RULES, samples, cuts, restore_at=restore, beats=beats))
    assert got == ref.alerts()
