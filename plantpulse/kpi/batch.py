"""KPIs of a finite input: the live state run over it once, so batch and live are the same code.

``compute`` is what ``kpi report`` does with stored samples and what tests do with a CSV:
the input may be one SampleBatch or many (in time order, e.g. read a day at a time), and the
end of the range closes every window ending by then (SPEC §4 rule 4: no data past the end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.results import AlertMark, KpiResult
from plantpulse.kpi.state import KpiState
from plantpulse.samples import SampleBatch, TagRegistry

__all__ = ["compute"]


def compute(
    plan: KpiPlan,
    tags: TagRegistry,
    batches: SampleBatch | Iterable[SampleBatch],
    *,
    start: int,
    end: int,
    alerts: Sequence[AlertMark] = (),
) -> list[KpiResult]:
    """Results of every window that ends in (start, end]; samples before ``start`` only seed
    held values and counter baselines."""
    state = KpiState(plan, tags, start=start)
    out: list[KpiResult] = []
    first = True
    for b in [batches] if isinstance(batches, SampleBatch) else batches:
        out += state.process(b, alerts=alerts if first else ())
        first = False
    if first:
        state.process(SampleBatch.empty(tags), alerts=alerts)
    out += state.advance(end)
    return [r for r in out if r.window.end <= end]
