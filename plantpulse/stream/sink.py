"""The sink collectors write to: samples into the bounded queue, heartbeats into the
watermark, errors into per-source counters (the collector runner logs once per cause)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from plantpulse.errors import SourceError
from plantpulse.samples import Sample
from plantpulse.stream.queue import Route, SampleQueue


class PipelineSink:
    def __init__(self, queue: SampleQueue) -> None:
        self.queue = queue
        self.heartbeat_watermark: int | None = None
        self.errors = Counter[tuple[str, str]]()  # (source, cause) -> count

    async def put(self, samples: Sequence[Sample]) -> None:
        await self.queue.put(samples)

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        """Samples a device replays from its buffer: evaluated and stored, never pushed live."""
        await self.queue.put(samples, Route.HISTORICAL)

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        """Watchdog staleness and reconnect gaps: stored and shown, never evaluated (they would
        reset ``stale:`` rules, which count samples of any quality)."""
        await self.queue.put(samples, Route.MARKER)

    def heartbeat(self, source: str, ts: int) -> None:
        if self.heartbeat_watermark is None or ts > self.heartbeat_watermark:
            self.heartbeat_watermark = ts

    def error(self, source: str, error: SourceError) -> None:
        self.errors[(source, type(error).__name__)] += 1  # the collector runner already logged it once
