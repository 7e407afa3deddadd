"""The sink collectors write to: samples into the bounded queue, heartbeats into the
watermark, errors into per-source counters (logged once per cause)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from plantpulse.errors import SourceError
from plantpulse.samples import Sample
from plantpulse.stream.queue import SampleQueue

log = logging.getLogger(__name__)


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
        cause = type(error).__name__
        key = (source, cause)
        if not self.errors[key]:
            log.warning("%s: %s (further %s errors from this source are counted, not logged)", source, error, cause)
        self.errors[key] += 1
