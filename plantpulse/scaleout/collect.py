"""``plantpulse run --role collect``: the collectors of ``plant.yaml``, publishing to the samples topic.

Collectors write to a ``KafkaSink`` exactly as they write to the single-process pipeline's
sink. Every ``kafka.linger`` the ``Batcher`` turns what they delivered into one binary batch
per (partition, route), stamped with the collector's watermark (its largest live timestamp or
heartbeat); every ``kafka.heartbeat`` each partition without samples gets a watermark-only
message, so ``for`` windows and ``stale:`` rules fire on
quiet partitions too (SPEC §4 rule 4).

Overflow policy: backpressure, as in the pipeline's queue: ``put`` waits while the sink holds
``stream.queue_size`` samples that the brokers have not acknowledged. A failed send is retried
with the same messages until the brokers take them (at least once; a batch sent twice is
stored once per message offset, see docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plantpulse.collectors.registry import build_runner
from plantpulse.config import PlantConfig
from plantpulse.errors import SourceError
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from plantpulse.scaleout.client import aiokafka_options
from plantpulse.scaleout.config import KafkaConfig
from plantpulse.scaleout.partitioning import Partitioner
from plantpulse.scaleout.wire import Route, SamplesWriter, encode_watermark
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)

__all__ = ["Batcher", "CollectStats", "KafkaSink", "run_collect", "samples_producer"]

MESSAGE_SAMPLES = 20_000
"""Samples per message at most (about 0.5 MB with short tag names): under the brokers' default
1 MB message size, large enough that the per-message cost is paid per batch."""


class Batcher:
    """Samples by (route, partition) -> messages. Pure: no I/O, no clock."""

    def __init__(self, partitioner: Partitioner) -> None:
        self.partitioner = partitioner
        self.tags = TagRegistry()
        self.writer = SamplesWriter()
        self.watermark: int | None = None
        self._buffers: dict[tuple[Route, int], list[Sample]] = {}
        self.held = 0

    def add(self, route: Route, samples: Sequence[Sample]) -> None:
        part = self.partitioner.partition
        bufs = self._buffers
        for s in samples:
            key = (route, part(s.tag))
            buf = bufs.get(key)
            if buf is None:
                buf = bufs[key] = []
            buf.append(s)
        self.held += len(samples)
        if route is Route.LIVE and samples:
            self.heartbeat(max(s.ts for s in samples))

    def heartbeat(self, ts: int) -> None:
        if self.watermark is None or ts > self.watermark:
            self.watermark = ts

    def drain(self, *, heartbeat: bool) -> list[tuple[int, bytes]]:
        """(partition, value) of every message due; with ``heartbeat``, a watermark-only message
        to each partition that gets no samples: every partition hears from every collector at
        least once per heartbeat, which also tells an evaluator that it is missing messages."""
        wm = self.watermark if self.watermark is not None else 0
        out: list[tuple[int, bytes]] = []
        sent: set[int] = set()
        for (route, p), samples in self._buffers.items():
            for i in range(0, len(samples), MESSAGE_SAMPLES):
                batch = SampleBatch.from_samples(self.tags, samples[i : i + MESSAGE_SAMPLES])
                out.append((p, self.writer.write(route, wm, batch)))
            sent.add(p)
        self._buffers.clear()
        self.held = 0
        if heartbeat and self.watermark is not None:
            for p in range(self.partitioner.partitions):
                if p not in sent:
                    out.append((p, encode_watermark(wm)))
        return out


@dataclass
class CollectStats:
    samples: int = 0
    messages: int = 0
    send_failures: int = 0
    backpressure_waits: int = 0


class KafkaSink:
    """The collectors' sink (``collectors.base.QualitySink``) in front of the ``Batcher``."""

    def __init__(self, batcher: Batcher, capacity: int) -> None:
        self.batcher = batcher
        self.capacity = capacity
        self.errors = Counter[tuple[str, str]]()
        self.stats = CollectStats()
        self._room = asyncio.Event()
        self._room.set()
        self._sent = asyncio.Event()

    async def _put(self, route: Route, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        while self.batcher.held and self.batcher.held + len(samples) > self.capacity:
            self.stats.backpressure_waits += 1
            self._room.clear()
            await self._room.wait()
        self.batcher.add(route, samples)
        self.stats.samples += len(samples)

    async def put(self, samples: Sequence[Sample]) -> None:
        await self._put(Route.LIVE, samples)

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        await self._put(Route.HISTORICAL, samples)

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        await self._put(Route.MARKER, samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self.batcher.heartbeat(ts)

    def error(self, source: str, error: SourceError) -> None:
        self.errors[(source, type(error).__name__)] += 1  # the collector runner already logged it once

    def drained(self) -> None:
        self._room.set()

    def sent(self) -> None:
        """The brokers acknowledged everything drained so far."""
        if not self.batcher.held:
            self._sent.set()

    async def wait_sent(self) -> None:
        """Until everything put so far is acknowledged by the brokers."""
        self._sent.clear()
        await self._sent.wait()


async def publish(sink: KafkaSink, producer: object, cfg: KafkaConfig, stop: asyncio.Event) -> None:
    """Send what the batcher holds every ``linger`` until ``stop``, then once more."""
    linger = cfg.linger / NS_PER_S
    loop = asyncio.get_running_loop()
    next_beat = loop.time()
    failing = False
    pending: list[tuple[int, bytes]] = []
    while True:
        stopping = stop.is_set()
        if not stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), linger)
        beat = loop.time() >= next_beat or stop.is_set()
        if beat:
            next_beat = loop.time() + cfg.heartbeat / NS_PER_S
        pending += sink.batcher.drain(heartbeat=beat)
        sink.drained()
        if pending:
            try:
                await send_all(producer, cfg.topics.samples, pending)
            except Exception as e:  # aiokafka's KafkaError tree; kept and retried
                sink.stats.send_failures += 1
                if not failing:
                    log.warning("brokers refused %d sample messages (%s); retrying", len(pending), e)
                    failing = True
                if stopping:
                    log.error("stopping with %d sample messages unsent", len(pending))  # noqa: TRY400
                    return
                continue
            if failing:
                log.info("brokers take sample messages again")
                failing = False
            sink.stats.messages += len(pending)
            pending = []
        sink.sent()
        if stopping:
            return


async def send_all(producer: object, topic: str, messages: Sequence[tuple[int, bytes]]) -> None:
    """Enqueue every message, then wait for the brokers to acknowledge all of them."""
    futures = [await producer.send(topic, value, partition=p) for p, value in messages]  # type: ignore[attr-defined]
    await asyncio.gather(*futures)


def samples_producer(cfg: KafkaConfig) -> Any:
    """The aiokafka producer collectors publish with: batches of up to 1 MB per partition and
    request, so that the next message does not wait for the previous one's round trip."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        **aiokafka_options(cfg), linger_ms=5, max_batch_size=1 << 20, max_request_size=8 << 20
    )


async def run_collect(
    plant: PlantConfig,
    rules: Sequence[Rule],
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    sources: Sequence[str] | None = None,
) -> CollectStats:
    """Run the collectors (all, or the ``sources`` named) until ``stop`` or ``duration``; flush,
    then return. Partitions are computed from every tag of the plant,
    so collectors running different sources agree on them."""
    assert plant.kafka is not None
    cfg = plant.kafka
    stop = stop or asyncio.Event()
    tags = [t.name for src in plant.sources for t in src.tags]
    sink = KafkaSink(Batcher(Partitioner(tags, rules, cfg.partitions)), plant.stream.queue_size)
    producer = samples_producer(cfg)
    await producer.start()
    publishing = asyncio.create_task(publish(sink, producer, cfg, stop), name="publish samples")
    runners = [build_runner(src, sink) for src in plant.sources if not sources or src.name in sources]
    collecting = [asyncio.create_task(r.run(), name=f"source {r.name}") for r in runners]
    log.info("collecting: %d sources, %d tags -> %s (%d partitions)", len(runners), len(tags),
             cfg.topics.samples, cfg.partitions)  # fmt: skip
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for task in collecting:
            task.cancel()
        await asyncio.gather(*collecting, return_exceptions=True)
        stop.set()
        sink.drained()
        await publishing
        await producer.stop()
    return sink.stats
