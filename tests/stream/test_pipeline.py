"""The local stream with the real engine, the real spool and the real SQLite store (no doubles).

Collectors' chunks are durable before ``put`` returns; heartbeats advance the watermark in
order with the samples; alerts are handed on with their on-shift snapshot and their trend; a
stop drains every queued sample into the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent, Trend
from plantpulse.config import SpoolConfig, StreamConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store.records import KIND_INPUT, decode_input
from plantpulse.store.spool import SpoolWriter, read_records
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline
from plantpulse.timefmt import NS_PER_MS, NS_PER_S

T0 = 1_767_225_600 * NS_PER_S
RULES = """\
rules:
  - id: hot
    tag: line1/*/temp
    above: 80
    for: 3s
    severity: high
    message: "温度 {value:.0f} °C"
"""
TEMP = "line1/oven1/temp"


def s(at: float, value: float, tag: str = TEMP) -> Sample:
    return Sample(T0 + round(at * NS_PER_S), tag, value)


@pytest.fixture
async def writer(store: SQLiteStore, tmp_path: Path) -> AsyncIterator[SpoolWriter]:
    w = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool"), open_store=False)
    await w.start()
    yield w
    await w.stop()


class Recorded:
    """The pipeline's Notifier protocol, recording what would be pushed (our own interface)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str]] = []
        self.events: list[AlertEvent] = []

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        self.pushed += [(e.kind, e.tag) for e in events]
        self.events += events


def make(writer: SpoolWriter, notifier: Recorded | None = None, **config: int) -> Pipeline:
    tags = TagRegistry()
    on_shift = {"operator": ["张伟"], "team_lead": ["李娜"]}
    return Pipeline(
        Engine(load_rules_text(RULES), tags),
        tags,
        writer,
        notifier,
        config=StreamConfig(**config),
        on_shift=lambda asset, at: on_shift,
    )


async def test_put_returns_once_the_samples_are_in_the_spool(writer: SpoolWriter, tmp_path: Path) -> None:
    """Durable before acknowledged: nothing has taken the samples from the queue yet, and
    still they are on disk when ``put`` returns (a collector acknowledges right after)."""
    p = make(writer)
    await p.sink.bind("press").put([s(0, 20.0), s(1, 21.0)])
    records = [
        decode_input(body, TagRegistry())
        for kind, _, body in read_records(tmp_path / "spool")
        if kind == KIND_INPUT
    ]
    assert [(r.source, [x.value for x in r.batch.samples()] if r.batch else None) for r in records] == [
        ("press", [20.0, 21.0])
    ]
    assert len(p.queue) == 2  # the engine sees them after, in the same order


async def test_heartbeat_fires_a_pending_condition_without_new_samples(
    store: SQLiteStore, writer: SpoolWriter
) -> None:
    p = make(writer)
    await p.sink.put([s(0, 90.0)])
    assert await p.step() == []
    p.sink.heartbeat("src", T0 + 2 * NS_PER_S)
    assert await p.step() == []  # 2 s < for
    p.sink.heartbeat("src", T0 + 3 * NS_PER_S)
    events = await p.step()
    assert [(e.kind, e.raised_at) for e in events] == [("raised", T0 + 3 * NS_PER_S)]
    await writer.flush()
    alerts = await store.alerts()
    assert [(a.rule, a.tag, a.raised_at, a.message) for a in alerts] == [
        ("hot", TEMP, T0 + 3 * NS_PER_S, "温度 90 °C")
    ]
    assert alerts[0].on_shift == {"operator": ["张伟"], "team_lead": ["李娜"]}


async def test_a_heartbeat_does_not_overtake_samples_queued_before_it(writer: SpoolWriter) -> None:
    """SPEC §4 rule 3: the sample at 1 s resets the pending condition; a heartbeat that
    arrived after it must not fire the condition first, however the queue is batched."""
    p = make(writer, batch_max=1)
    src = p.sink.bind("oven")
    await src.put([s(0, 90.0)])
    await src.put([s(1, 20.0)])
    src.heartbeat("oven", T0 + 5 * NS_PER_S)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(p.run(stop), 5)  # drains in micro-batches of one sample
    assert p.stats.raised == 0 and p.stats.heartbeats == 1
    assert p.watermark == T0 + 5 * NS_PER_S


async def test_a_sample_stamped_ahead_does_not_move_the_watermark_past_its_arrival(
    writer: SpoolWriter,
) -> None:
    now = T0 + 1 * NS_PER_S
    tags = TagRegistry()
    p = Pipeline(Engine(load_rules_text(RULES), tags), tags, writer, clock=lambda: now)
    await p.sink.bind("a").put([s(0, 90.0)])  # pending from 0 s, due at 3 s
    await p.sink.bind("b").put([s(3600, 20.0, "line1/oven2/temp")])  # another clock, an hour ahead
    assert await p.step() == []  # the hour-ahead stamp counts only up to its arrival
    assert p.watermark == now
    assert p.watermarks == {"a": T0, "b": now}


async def test_stop_drains_queue_into_the_store(store: SQLiteStore, writer: SpoolWriter) -> None:
    p = make(writer, batch_max=100)
    stop = asyncio.Event()
    runner = asyncio.create_task(p.run(stop))
    for k in range(50):
        await p.sink.put([Sample(T0 + (10 * k + i) * 100 * NS_PER_MS, TEMP, 20.0 + i) for i in range(10)])
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert p.stats.samples == 500
    await writer.flush()
    latest = await store.latest()
    assert latest[TEMP].ts == T0 + 499 * 100 * NS_PER_MS


async def test_backpressure_makes_producers_wait_not_grow(writer: SpoolWriter) -> None:
    p = make(writer, queue_size=20, batch_max=10)
    stop = asyncio.Event()
    await p.sink.put([Sample(T0 + i, TEMP, 1.0) for i in range(10)])
    second = asyncio.create_task(p.sink.put([Sample(T0 + 10 + i, TEMP, 1.0) for i in range(15)]))
    await asyncio.sleep(0)  # let the producer run into the full queue
    assert not second.done() and len(p.queue) == 10
    runner = asyncio.create_task(p.run(stop))
    await asyncio.wait_for(second, 5)
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert p.stats.samples == 25
    assert p.stats.backpressure_waits >= 1


async def test_historical_alerts_are_stored_not_pushed_and_markers_are_not_evaluated(
    store: SQLiteStore, writer: SpoolWriter
) -> None:
    notifier = Recorded()
    p = make(writer, notifier)
    await p.sink.put_historical([s(i, 95.0) for i in range(5)])
    await p.sink.put_markers([s(10, 120.0, "line1/oven2/temp")])  # would fire if evaluated
    await p.sink.put([s(6, 20.0)])
    p.sink.heartbeat("src", T0 + 20 * NS_PER_S)
    events = await p.step()
    # the replayed run raised in the past (stored, not pushed); the live sample clears it live
    assert [(e.kind, e.at) for e in events] == [("raised", T0 + 3 * NS_PER_S), ("cleared", T0 + 6 * NS_PER_S)]
    assert notifier.pushed == [("cleared", TEMP)]
    await writer.flush()
    alerts = await store.alerts()
    assert [(a.tag, a.raised_at, a.cleared_at) for a in alerts] == [
        (TEMP, T0 + 3 * NS_PER_S, T0 + 6 * NS_PER_S)
    ]
    assert (p.stats.historical, p.stats.markers, p.stats.samples) == (5, 1, 7)
    latest = await store.latest()
    assert latest["line1/oven2/temp"].value == 120.0


async def test_a_raise_carries_the_trend_over_its_for_window(writer: SpoolWriter) -> None:
    notifier = Recorded()
    p = make(writer, notifier)
    await p.sink.put([s(1, 85.0), s(1.5, 70.0)])  # before the window: not in the trend
    await p.sink.put([s(2, 90.0), s(2.5, 99.0, "line1/oven2/temp")])  # another tag: not in it either
    await p.sink.put([s(3, 95.0), s(4, 93.0)])
    await p.sink.put([s(5, float("nan"))])  # bad, at raised_at: fires (2 s + 3 s), left out of the trend
    events = await p.step()
    assert [(e.kind, e.raised_at) for e in events] == [("raised", T0 + 5 * NS_PER_S)]
    assert events[0].trend == Trend(first=90.0, last=93.0, min=90.0, max=95.0, n=3, window=3 * NS_PER_S)
    assert notifier.events[0].trend == events[0].trend


async def test_a_closed_sink_takes_nothing_more(writer: SpoolWriter, tmp_path: Path) -> None:
    """A collector still delivering after its stop deadline: nothing appended (nor acknowledged),
    so the engine's drained input is all the input there is."""
    p = make(writer)
    await p.sink.put([s(0, 20.0)])
    p.sink.close()
    with pytest.raises(asyncio.CancelledError):
        await p.sink.bind("late").put([s(1, 21.0)])
    p.sink.heartbeat("late", T0 + 2 * NS_PER_S)
    assert sum(kind == KIND_INPUT for kind, _, _ in read_records(tmp_path / "spool")) == 1
    assert len(await p.step()) == 0 and p.stats.samples == 1 and p.stats.heartbeats == 0
