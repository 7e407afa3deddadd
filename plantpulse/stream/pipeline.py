"""The local stream: bounded queue -> micro-batches -> rules engine -> store and notifier.

One asyncio task drains the queue in micro-batches (up to ``batch_max`` samples or about
``batch_interval``), feeds them to the pure rules engine, advances the engine with
collector heartbeats, and hands the results to the outputs. Alerts go out before the
batch's samples are written, so a slow sample write never delays a push.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.config import StreamConfig
from plantpulse.rules.engine import Engine
from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry
from plantpulse.stream.queue import SampleQueue
from plantpulse.stream.sink import PipelineSink
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)


class Writer(Protocol):
    """Where the pipeline writes; the spooling writer never raises on a store outage."""

    async def write_samples(self, batch: SampleBatch) -> None: ...

    async def write_alert_events(
        self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]
    ) -> None: ...


class Notifier(Protocol):
    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        """Queue pushes for these events; must not block the pipeline."""


OnShift = Callable[[str, int], dict[str, list[str]]]
"""(asset, raised_at ns) -> role -> names on shift; the roster's resolution."""


class Rules(Protocol):
    """Approved rule versions (``plantpulse.approvals.live.LiveRules``, docs/approvals.md)."""

    def swap(self, engine: Engine) -> tuple[Engine, list[AlertEvent]] | None:
        """Between two batches: the engine of a newly approved version and the clears of the
        alerts the switch closes, or None."""

    def stamp(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """The events with the version of the rule that raised them."""


@dataclass
class PipelineStats:
    """Read-only counters for status pages and the demo summary."""

    batches: int = 0
    samples: int = 0
    bad_samples: int = 0
    historical: int = 0  # replayed from device buffers: evaluated and stored, not pushed
    markers: int = 0  # watchdog and gap markers: stored only
    raised: int = 0
    cleared: int = 0
    backpressure_waits: int = 0
    alert_latency_ms: list[float] = field(
        default_factory=list
    )  # wall time from batch taken to alert handed on


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        tags: TagRegistry,
        writer: Writer,
        notifier: Notifier | None = None,
        *,
        config: StreamConfig | None = None,
        on_shift: OnShift | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_batch: Callable[[SampleBatch, list[AlertEvent]], None] | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        self.rules = rules
        self.engine = engine
        self.tags = tags
        self.writer = writer
        self.notifier = notifier
        self.on_shift = on_shift
        self.on_alert = on_alert
        self.on_batch = on_batch  # observers such as the live board; must not block
        self.queue = SampleQueue(self.config.queue_size)
        self.sink = PipelineSink(self.queue)
        self.stats = PipelineStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set, then drain what the queue holds and return."""
        linger = self.config.batch_interval / NS_PER_S
        while True:
            stopping = stop.is_set()
            drained = await self.queue.get_batch(self.config.batch_max, 0 if stopping else linger)
            await self.step(drained.live, drained.historical, drained.markers)
            if stopping and not len(self.queue):
                break
        self.stats.backpressure_waits = self.queue.waits

    async def step(
        self, samples: Sequence[Sample], historical: Sequence[Sample] = (), markers: Sequence[Sample] = ()
    ) -> list[AlertEvent]:
        """One micro-batch: evaluate, advance by heartbeats, hand alerts and samples on.

        Historical samples (older by nature) are evaluated first; what they raise or clear is
        stored and journaled but not pushed: people were told live, or it is long over. A newly
        approved rule version takes over here, before the batch (docs/approvals.md)."""
        started = time.perf_counter()
        closed: list[AlertEvent] = []
        if self.rules is not None and (swapped := self.rules.swap(self.engine)) is not None:
            self.engine, closed = swapped
        if historical:
            past = self.engine.process(SampleBatch.from_samples(self.tags, historical))
            if past:
                await self._emit(self._stamped(past), started, push=False)
            self.stats.historical += len(historical)
        batch = SampleBatch.from_samples(self.tags, samples)
        events = self.engine.process(batch) if len(batch) else []
        hb = self.sink.heartbeat_watermark
        if hb is not None and (self.engine.watermark is None or hb > self.engine.watermark):
            events.extend(self.engine.advance(hb))
        events = closed + self._stamped(events)
        if events:
            await self._emit(events, started)
        if historical or markers:
            self.stats.markers += len(markers)
            batch = SampleBatch.concat(
                self.tags,
                [
                    batch,
                    SampleBatch.from_samples(self.tags, historical),
                    SampleBatch.from_samples(self.tags, markers),
                ],
            )
        if self.on_batch is not None:
            self.on_batch(batch, events)
        if len(batch):
            self.stats.batches += 1
            self.stats.samples += len(batch)
            self.stats.bad_samples += int(np.count_nonzero(batch.quality == Quality.BAD))
            await self.writer.write_samples(batch)
        return events

    def _stamped(self, events: list[AlertEvent]) -> list[AlertEvent]:
        return self.rules.stamp(events) if self.rules is not None and events else events

    async def _emit(self, events: list[AlertEvent], started: float, *, push: bool = True) -> None:
        on_shift: dict[str, dict[str, list[str]]] = {}
        if self.on_shift is not None:
            for ev in events:
                if ev.kind == "raised":
                    on_shift[ev.alert_id] = self.on_shift(ev.asset, ev.raised_at)
        await self.writer.write_alert_events(events, on_shift)
        if self.notifier is not None and push:
            self.notifier.submit(events, on_shift)
        for ev in events:
            if ev.kind == "raised":
                self.stats.raised += 1
            else:
                self.stats.cleared += 1
            if self.on_alert is not None:
                self.on_alert(ev)
        self.stats.alert_latency_ms.append((time.perf_counter() - started) * 1000)
