"""The local stream with the real engine and the real SQLite store (no doubles).

Heartbeats advance the watermark so a pending condition fires with no new sample; alerts are
handed on with their on-shift snapshot; a stop drains every queued sample into the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.config import SpoolConfig, StreamConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store.spool import SpoolWriter
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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def writer(store: SQLiteStore, tmp_path: Path) -> AsyncIterator[SpoolWriter]:
    w = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool"), open_store=False)
    await w.start()
    yield w
    await w.stop()


def make(writer: SpoolWriter, **config: int) -> Pipeline:
    tags = TagRegistry()
    on_shift = {"operator": ["张伟"], "team_lead": ["李娜"]}
    return Pipeline(
        Engine(load_rules_text(RULES), tags),
        tags,
        writer,
        config=StreamConfig(**config),
        on_shift=lambda asset, at: on_shift,
    )


async def test_heartbeat_fires_a_pending_condition_without_new_samples(
    store: SQLiteStore, writer: SpoolWriter
) -> None:
    p = make(writer)
    assert await p.step([Sample(T0, "line1/oven1/temp", 90.0)]) == []
    p.sink.heartbeat("src", T0 + 2 * NS_PER_S)
    assert await p.step([]) == []  # 2 s < for
    p.sink.heartbeat("src", T0 + 3 * NS_PER_S)
    events = await p.step([])
    assert [(e.kind, e.raised_at) for e in events] == [("raised", T0 + 3 * NS_PER_S)]
    await writer.flush()
    alerts = await store.alerts()
    assert [(a.rule, a.tag, a.raised_at, a.message) for a in alerts] == [
        ("hot", "line1/oven1/temp", T0 + 3 * NS_PER_S, "温度 90 °C")
    ]
    assert alerts[0].on_shift == {"operator": ["张伟"], "team_lead": ["李娜"]}


async def test_stop_drains_queue_into_the_store(store: SQLiteStore, writer: SpoolWriter) -> None:
    p = make(writer, batch_max=100)
    stop = asyncio.Event()
    runner = asyncio.create_task(p.run(stop))
    for k in range(50):
        await p.sink.put(
            [Sample(T0 + (10 * k + i) * 100 * NS_PER_MS, "line1/oven1/temp", 20.0 + i) for i in range(10)]
        )
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert p.stats.samples == 500
    await writer.flush()
    latest = await store.latest()
    assert latest["line1/oven1/temp"].ts == T0 + 499 * 100 * NS_PER_MS


async def test_backpressure_makes_producers_wait_not_grow(writer: SpoolWriter) -> None:
    p = make(writer, queue_size=20, batch_max=10)
    stop = asyncio.Event()
    producer = asyncio.create_task(p.sink.put([Sample(T0 + i, "line1/oven1/temp", 1.0) for i in range(10)]))
    await producer
    second = asyncio.create_task(
        p.sink.put([Sample(T0 + 10 + i, "line1/oven1/temp", 1.0) for i in range(15)])
    )
    await asyncio.sleep(0)  # let the producer run into the full queue
    assert not second.done() and len(p.queue) == 10
    runner = asyncio.create_task(p.run(stop))
    await asyncio.wait_for(second, 5)
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert p.stats.samples == 25
    assert p.stats.backpressure_waits >= 1


class Recorded:
    """The pipeline's Notifier protocol, recording what would be pushed (our own interface)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str]] = []

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        self.pushed += [(e.kind, e.tag) for e in events]


async def test_historical_alerts_are_stored_not_pushed_and_markers_are_not_evaluated(
    store: SQLiteStore, writer: SpoolWriter
) -> None:
    tags = TagRegistry()
    notifier = Recorded()
    p = Pipeline(Engine(load_rules_text(RULES), tags), tags, writer, notifier)
    replayed = [Sample(T0 + i * NS_PER_S, "line1/oven1/temp", 95.0) for i in range(5)]
    marker = [Sample(T0 + 10 * NS_PER_S, "line1/oven2/temp", 120.0)]  # would fire if evaluated
    events = await p.step([Sample(T0 + 6 * NS_PER_S, "line1/oven1/temp", 20.0)], replayed, marker)
    p.sink.heartbeat("src", T0 + 20 * NS_PER_S)
    events += await p.step([])
    # the replayed run raised in the past (stored, not pushed); the live sample clears it live
    assert [(e.kind, e.at) for e in events] == [("cleared", T0 + 6 * NS_PER_S)]
    assert notifier.pushed == [("cleared", "line1/oven1/temp")]
    await writer.flush()
    alerts = await store.alerts()
    assert [(a.tag, a.raised_at, a.cleared_at) for a in alerts] == [
        ("line1/oven1/temp", T0 + 3 * NS_PER_S, T0 + 6 * NS_PER_S)
    ]
    assert (p.stats.historical, p.stats.markers, p.stats.samples) == (5, 1, 7)
    latest = await store.latest()
    assert latest["line1/oven2/temp"].value == 120.0
