"""Columns and the columnar live/historical split, held to the row-wise ``quality.Historical``."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from plantpulse.collectors.columns import Columns, LiveSplit, to_samples
from plantpulse.collectors.quality import Historical
from plantpulse.samples import Quality, Sample, TagRegistry


def test_columns_take_a_batch_and_start_empty() -> None:
    cols = Columns(TagRegistry())
    cols.extend_samples(
        [Sample(2, "a", 1.5), Sample(1, "b", math.nan, Quality.GOOD), Sample(3, "a", 2.0, Quality.UNCERTAIN)]
    )
    cols.truncate(2)
    batch = cols.take()
    assert len(cols) == 0 and len(batch) == 2
    rows = to_samples(batch)
    assert rows[0] == Sample(2, "a", 1.5)
    assert rows[1].tag == "b" and math.isnan(rows[1].value) and rows[1].quality == Quality.BAD  # NaN is bad
    cols.append(5, batch.tags.id("c"), 1.0, 0)  # the arrays the batch views are never written again
    assert to_samples(batch)[0] == Sample(2, "a", 1.5) and len(cols.take()) == 1


rows = st.lists(st.tuples(st.integers(0, 20), st.sampled_from("abcd"), st.integers(0, 3)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, max_size=5))
def test_live_split_equals_the_row_wise_split(bursts: list[list[tuple[int, str, int]]]) -> None:
    tags = TagRegistry()
    columnar, rowwise = LiveSplit(), Historical()
    for burst in bursts:
        samples = sorted((Sample(ts, tag, float(v)) for ts, tag, v in burst), key=lambda s: s.ts)
        cols = Columns(tags)
        cols.extend_samples(samples)
        live, old = columnar.split(cols.take().sorted())
        want_live, want_old = rowwise.split(samples)
        assert to_samples(live) == want_live
        assert (to_samples(old) if old is not None else []) == want_old
