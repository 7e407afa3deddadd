"""The live shape: every tag at most once per batch, rows in arrival (not time) order.

Such batches take the engine's unsorted fast path; the answer must be the reference's on
the same rows sorted stably by time, including when a batch repeats the previous one's tag
column (the cached layout) and across snapshot/restore.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantpulse.alerts import AlertEvent
from plantpulse.rules.engine import Engine
from plantpulse.samples import Sample, SampleBatch, TagRegistry

from .helpers import alerts_of
from .reference import reference_alerts
from .test_property import RULES, series


def _distinct_batches(samples: list[Sample], perm: list[int]) -> list[list[Sample]]:
    """Cut greedily so that no batch holds a tag twice, then shuffle each batch."""
    out: list[list[Sample]] = []
    cur: list[Sample] = []
    for s in samples:
        if any(c.tag == s.tag for c in cur):
            out.append(cur)
            cur = []
        cur.append(s)
    if cur:
        out.append(cur)
    shuffled = []
    for b in out:
        order = sorted(range(len(b)), key=lambda i: perm[i % len(perm)] * 1000 + i)
        shuffled.append([b[i] for i in order])
    return shuffled


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.lists(st.integers(0, 9), min_size=1, max_size=8), st.booleans())
def test_unsorted_distinct_batches_match_reference(
    case: tuple[list[Sample], list[int], int | None], perm: list[int], fixed_layout: bool
) -> None:
    samples, _, restore = case
    if fixed_layout:  # every batch sends all tags in one fixed order, as a polled source does
        tags = sorted({s.tag for s in samples})
        batches = [[Sample(s.ts, t, s.value, s.quality) for t in tags] for s in samples[:12]]
    else:
        batches = _distinct_batches(samples, perm)
    fed = [s for b in batches for s in b]
    expected = reference_alerts(RULES, fed)
    reg = TagRegistry()
    eng = Engine(RULES, reg)
    events: list[AlertEvent] = []
    for i, b in enumerate(batches):
        if restore is not None and i == restore:
            state = json.loads(json.dumps(eng.snapshot(), allow_nan=False))
            reg = TagRegistry(["zz/unrelated"])
            eng = Engine(RULES, reg).restore(state)
        events += eng.process(SampleBatch.from_samples(reg, b))
    events += eng.advance(max(s.ts for s in fed))
    assert alerts_of(events) == expected
