"""The input queue: bounded by samples held, backpressure before the log, entries in order."""

import asyncio

from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.spool import Position
from plantpulse.stream.queue import Entry, InputQueue, Route

REG = TagRegistry(["a/b"])


def entry(n: int, start: int = 0, route: Route = Route.LIVE) -> Entry:
    done: asyncio.Future[Position | None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    batch = SampleBatch.make(REG, range(start, start + n), [0] * n, [float(i) for i in range(n)])
    return Entry(route, "src", start + n - 1, batch, done)


def beat(ts: int) -> Entry:
    done: asyncio.Future[Position | None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return Entry(Route.HEARTBEAT, "src", ts, None, done)


async def put(q: InputQueue, e: Entry) -> None:
    await q.room(len(e))
    q.put_nowait(e)


async def test_room_waits_when_full_and_resumes_after_a_batch_is_taken() -> None:
    q = InputQueue(capacity=10)
    await put(q, entry(8))
    blocked = asyncio.create_task(put(q, entry(5, 100)))
    await asyncio.sleep(0)  # let the producer run into the full queue
    assert not blocked.done()
    assert q.waits == 1
    got = await q.get_batch(max_samples=100, linger=0.1)
    assert [e.batch.ts.tolist() for e in got if e.batch is not None] == [list(range(8))]
    await asyncio.wait_for(blocked, 1)
    assert len(q) == 5


async def test_get_batch_respects_max_without_splitting_entries() -> None:
    q = InputQueue(capacity=100)
    for k in range(4):
        await put(q, entry(3, 10 * k))
    first = await q.get_batch(max_samples=7, linger=0.1)
    assert sum(len(e) for e in first) == 6
    rest = await q.get_batch(max_samples=4, linger=0.1)
    assert [e.watermark for e in rest] == [22]


async def test_get_batch_returns_empty_after_linger() -> None:
    q = InputQueue(capacity=5)
    assert await q.get_batch(10, linger=0.01) == []


async def test_oversized_entry_is_admitted_alone() -> None:
    q = InputQueue(capacity=2)
    await asyncio.wait_for(put(q, entry(5)), 1)
    assert len(q) == 5


async def test_routes_and_heartbeats_keep_their_order() -> None:
    q = InputQueue(capacity=100)
    await put(q, entry(2))
    q.put_nowait(beat(7))  # a heartbeat holds no samples but wakes the consumer all the same
    await put(q, entry(3, 10, Route.HISTORICAL))
    await put(q, entry(1, 20, Route.MARKER))
    got = await q.get_batch(100, linger=0.1)
    assert [(e.route, e.watermark) for e in got] == [
        (Route.LIVE, 1),
        (Route.HEARTBEAT, 7),
        (Route.HISTORICAL, 12),
        (Route.MARKER, 20),
    ]
    assert q.empty and len(q) == 0
