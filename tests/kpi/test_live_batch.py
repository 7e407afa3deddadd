"""Live = batch (deliver item 3): random series with counter resets and wraps, gaps and bad
samples, cut into random micro-batches (shuffled inside, heartbeats between, the state dumped
to JSON and loaded into a registry that numbers tags differently at random cuts), give exactly
the results of one batch computation over the same data."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantpulse.kpi.batch import compute
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.results import AlertMark, KpiResult
from plantpulse.kpi.state import KpiState
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from tests.kpi.helpers import make_plan

NS = 1_000_000_000
MIN = 60 * NS
ASSETS = ("l/a", "l/b")
SIGNALS = ("good", "total", "rework", "made", "state", "temp")
# spring forward (Mar 29) and fall back (Oct 25) in Europe/Berlin, both from 20:00 the day before
STARTS = (
    int(datetime(2026, 3, 28, 19, 0, tzinfo=UTC).timestamp()) * NS,
    int(datetime(2026, 10, 24, 18, 0, tzinfo=UTC).timestamp()) * NS,
)
SPAN = 34 * 60 * MIN


def series(seed: int, start: int, n: int) -> tuple[list[tuple[int, str, float, int]], list[AlertMark]]:
    """Samples (ts, tag, value, quality), time-sorted with ties, and alert raises."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, str, float, int]] = []
    for asset in ASSETS:
        for sig in SIGNALS:
            k = int(rng.integers(n // 2, n))
            # (tag, ts) is unique, as in the store; ties across tags are common
            ts = np.unique(
                start - 20 * MIN + rng.integers(0, SPAN // MIN, k) * MIN + rng.integers(0, 3, k) * 20 * NS
            )
            total = good = made = rework = 0.0
            for t in ts.tolist():
                q = (
                    int(Quality.BAD)
                    if rng.random() < 0.06
                    else int(Quality.GOOD if rng.random() < 0.9 else Quality.UNCERTAIN)
                )
                if sig in ("good", "total"):
                    step = float(rng.integers(0, 4))
                    total = (total + step) % 1000  # wraps (modulus 1000 declared)
                    good = (good + step - float(rng.random() < 0.2)) % 1000
                    v = total if sig == "total" else good
                elif sig in ("rework", "made"):
                    made += float(rng.integers(0, 4))
                    rework += float(rng.random() < 0.3)
                    if rng.random() < 0.03:  # a PLC power cycle: counters restart
                        made, rework = float(rng.integers(0, 3)), 0.0
                    v = made if sig == "made" else rework
                elif sig == "state":
                    v = float(rng.choice([0, 1, 2, 3]))
                else:
                    v = float(rng.choice([15.0, 20.0, 21.5, 23.0, 31.0, 40.0]))
                if q == int(Quality.BAD) and rng.random() < 0.5:
                    v = float("nan")
                rows.append((t, f"{asset}/{sig}", v, q))
    rows.sort(key=lambda r: r[0])
    marks = [
        AlertMark(
            start + int(rng.integers(0, SPAN // NS)) * NS,
            str(rng.choice(["weld-current", "other"])),
            str(rng.choice(list(ASSETS))),
            "high",
        )
        for _ in range(int(rng.integers(0, 15)))
    ]
    return rows, sorted(marks, key=lambda m: m.raised_at)


def encode(tags: TagRegistry, rows: list[tuple[int, str, float, int]]) -> SampleBatch:
    return SampleBatch.make(
        tags, [r[0] for r in rows], [tags.id(r[1]) for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )


def names() -> list[str]:
    return [f"{a}/{s}" for a in ASSETS for s in SIGNALS]


def live(
    plan: KpiPlan,
    rows: list[tuple[int, str, float, int]],
    marks: list[AlertMark],
    *,
    span: tuple[int, int],
    cuts: list[int],
    dumps: set[int],
    rng: np.random.Generator,
) -> list[KpiResult]:
    """Feed ``rows`` cut at ``cuts`` (each cut shuffled), dump and load after the cuts in ``dumps``."""
    start, end = span
    tags = TagRegistry(names())
    state = KpiState(plan, tags, start=start)
    out: list[KpiResult] = []
    pending = list(marks)
    bounds = [0, *sorted(set(cuts)), len(rows)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        chunk = rows[a:b]
        rng.shuffle(chunk)  # type: ignore[arg-type]
        top = max((r[0] for r in chunk), default=None)
        mine = [m for m in pending if top is not None and m.raised_at <= top]
        pending = pending[len(mine) :]
        out += state.process(encode(tags, chunk), alerts=mine)
        if top is not None and b < len(rows) and rng.random() < 0.2:
            # a heartbeat: the watermark moves on, never past a sample still to come
            # (with the raises the engine would emit by then)
            beat = top + int(rng.integers(0, rows[b][0] - top + 1))
            due = [m for m in pending if m.raised_at <= beat]
            pending = pending[len(due) :]
            out += state.process(SampleBatch.empty(tags), alerts=due, watermark=beat)
        if i in dumps:
            data = json.loads(json.dumps(state.dump(), allow_nan=False))
            tags = TagRegistry(reversed(names()))  # ids differ after the restart
            state = KpiState.load(plan, tags, data)
    state.process(SampleBatch.empty(tags), alerts=pending)
    out += state.advance(end)
    return [r for r in out if r.window.end <= end]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    which=st.sampled_from(STARTS),
    n=st.integers(4, 120),
    cuts=st.lists(st.integers(0, 2000), max_size=25),
    dumps=st.sets(st.integers(0, 25), max_size=3),
)
def test_live_equals_batch(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    seed: int,
    which: int,
    n: int,
    cuts: list[int],
    dumps: set[int],
) -> None:
    plan = make_plan(tmp_path_factory.mktemp("kpi"))
    rows, marks = series(seed, which, n)
    start, end = which, which + SPAN
    tags = TagRegistry(names())
    want = compute(plan, tags, encode(tags, rows), start=start, end=end, alerts=marks)
    cut = [c % (len(rows) + 1) for c in cuts]
    got = live(plan, rows, marks, span=(start, end), cuts=cut, dumps=dumps, rng=np.random.default_rng(seed))
    assert len(want) > 100
    assert got == want


def test_one_sample_per_tag_batches_take_the_fast_path(tmp_path: Path) -> None:
    """The live shape (every tag once per batch, in time order) equals the batch computation."""
    plan = make_plan(tmp_path)
    rng = np.random.default_rng(7)
    start = STARTS[0]
    rows = []
    for k in range(0, 600):
        t = start + k * 6 * NS * 10
        for name in names():
            sig = name.rpartition("/")[2]
            v = (
                float(k // 7)
                if sig in ("good", "total", "made", "rework")
                else float(rng.choice([1.0, 2.0, 25.0, 35.0]))
            )
            rows.append((t + int(rng.integers(0, NS)), name, v, 0))
    rows.sort(key=lambda r: r[0])
    end = start + 600 * 60 * NS
    tags = TagRegistry(names())
    want = compute(plan, tags, encode(tags, rows), start=start, end=end)
    per = len(names())
    cuts = list(range(per, len(rows), per))
    got = live(plan, rows, [], span=(start, end), cuts=cuts, dumps=set(), rng=np.random.default_rng(1))
    assert got == want
    assert any(r.value is not None and r.kpi == "fpy" for r in got)
