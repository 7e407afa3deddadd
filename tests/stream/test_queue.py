"""The sample queue: bounded by samples held, backpressure instead of growth."""

import asyncio

from plantpulse.samples import Sample
from plantpulse.stream.queue import Route, SampleQueue


def samples(n: int, start: int = 0) -> list[Sample]:
    return [Sample(start + i, "a/b", float(i)) for i in range(n)]


async def test_put_waits_when_full_and_resumes_after_a_batch_is_taken() -> None:
    q = SampleQueue(capacity=10)
    await q.put(samples(8))
    blocked = asyncio.create_task(q.put(samples(5, 100)))
    await asyncio.sleep(0)  # let the producer run into the full queue
    assert not blocked.done()
    assert q.waits == 1
    got = await q.get_batch(max_samples=100, linger=0.1)
    assert [s.ts for s in got.live] == list(range(8))
    await asyncio.wait_for(blocked, 1)
    assert len(q) == 5


async def test_get_batch_respects_max_without_splitting_chunks() -> None:
    q = SampleQueue(capacity=100)
    for k in range(4):
        await q.put(samples(3, 10 * k))
    first = await q.get_batch(max_samples=7, linger=0.1)
    assert len(first) == 6
    rest = await q.get_batch(max_samples=4, linger=0.1)
    assert [s.ts for s in rest.live] == [20, 21, 22]


async def test_get_batch_returns_empty_after_linger() -> None:
    q = SampleQueue(capacity=5)
    assert len(await q.get_batch(10, linger=0.01)) == 0


async def test_oversized_chunk_is_admitted_alone() -> None:
    q = SampleQueue(capacity=2)
    await asyncio.wait_for(q.put(samples(5)), 1)
    assert len(q) == 5


async def test_routes_are_kept_apart_in_one_batch() -> None:
    q = SampleQueue(capacity=100)
    await q.put(samples(2))
    await q.put(samples(3, 10), Route.HISTORICAL)
    await q.put(samples(1, 20), Route.MARKER)
    got = await q.get_batch(100, linger=0.1)
    assert ([s.ts for s in got.live], [s.ts for s in got.historical], [s.ts for s in got.markers]) == (
        [0, 1],
        [10, 11, 12],
        [20],
    )
