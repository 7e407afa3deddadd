"""``write_sample_batches`` on every backend: many spool records in one transaction, each id once.

(Recent timestamps: a TimescaleDB retention policy must not take the data while the test runs.)
"""

from __future__ import annotations

import time

from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store import Store

S = 1_000_000_000
T0 = (time.time_ns() // S - 3600) * S


def part(reg: TagRegistry, i: int, n: int = 50) -> SampleBatch:
    names = [f"line1/m{k % 4}/temp" for k in range(n)]
    return SampleBatch.make(
        reg,
        [T0 + (i * n + k) * S // 10 for k in range(n)],
        reg.ids(names),
        [float(i * n + k) for k in range(n)],
    )


async def totals(store: Store) -> tuple[int, float]:
    latest = await store.latest()
    count = total = 0.0
    for tag in latest:
        # raw buckets (not whole minutes): a TimescaleDB rollup may lag a moment behind the rows
        for b in await store.series(tag, T0 - 61 * S, T0 + 61 * S, 61 * S):
            count += b.count
            total += b.avg * b.count
    return int(count), total


async def test_several_batches_commit_together_and_committed_ids_are_skipped(store: Store) -> None:
    reg = TagRegistry()
    assert await store.write_samples(part(reg, 0), "r0") is True  # committed earlier, one by one
    batches = [(f"r{i}", part(reg, i)) for i in range(6)]
    batches.insert(3, ("r2", part(reg, 2)))  # the same record twice in one call: written once
    assert await store.write_sample_batches(batches) == [False, True, True, False, True, True, True]
    assert await store.write_sample_batches(batches[:2]) == [False, False]
    assert await totals(store) == (300, float(sum(range(300))))


async def test_batches_from_different_registries_and_overlapping_rows(store: Store) -> None:
    one, other = TagRegistry(["x/y/z"]), TagRegistry()  # ids differ between the two registries
    a = part(one, 0)
    b = part(other, 0)  # the same (tag, ts) again under a new id: the first write wins
    c = part(other, 1)
    assert await store.write_sample_batches([("a", a), ("b", b), ("c", c)]) == [True, True, True]
    assert await totals(store) == (100, float(sum(range(100))))
