"""The sink collectors write to: samples into the bounded queue, heartbeats into the
watermark, errors into per-source counters (the collector runner logs once per cause)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from plantpulse.errors import SourceError
from plantpulse.samples import Sample
from plantpulse.stream.queue import SampleQueue


class PipelineSink:
    def __init__(self, queue: SampleQueue) -> None:
        self.queue = queue
        self.heartbeat_watermark: int | None = None
        self.errors = Counter[tuple[str, str]]()  # (source, cause) -> count

    async def put(self, samples: Sequence[Sample]) -> None:
        await self.queue.put(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        if self.heartbeat_watermark is None or ts > self.heartbeat_watermark:
            self.heartbeat_watermark = ts

    def error(self, source: str, error: SourceError) -> None:
        self.errors[(source, type(error).__name__)] += 1  # the collector runner already logged it once
