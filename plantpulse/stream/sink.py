"""The sink collectors write to: every chunk into the input log first, then the queue.

``put`` returns only once the chunk is appended to the fsync'd spool (group-committed with
whatever else arrived meanwhile), so whatever a collector acknowledges to its device or broker
after ``put`` survives a crash; the engine then takes it from the queue in spool order.
Heartbeats travel the same way, in order with the samples. Each chunk also carries its
source's watermark contribution: its newest timestamp, but never later than its arrival.

``bind(source)`` gives each collector runner its own view, so the log knows whose chunk it is.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from plantpulse.errors import SourceError
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from plantpulse.store.records import Route
from plantpulse.store.spool import Appended
from plantpulse.stream.queue import Entry, InputQueue

__all__ = ["InputLog", "PipelineSink", "QuarantineLog", "SourceSink"]


class InputLog(Protocol):
    """Where input goes first (``SpoolWriter``): the future resolves once it is durable."""

    def submit_input(
        self, route: Route, source: str, watermark: int | None, batch: SampleBatch | None
    ) -> Appended: ...


class QuarantineLog(Protocol):
    def write(self, source: str, cause: str, samples: Sequence[Sample], arrived: int) -> None: ...


class PipelineSink:
    """Unbound, it is a sink for the unnamed source ``""`` (tests and tools)."""

    def __init__(
        self,
        queue: InputQueue,
        log: InputLog,
        tags: TagRegistry,
        *,
        clock: Callable[[], int] = time.time_ns,
        quarantine: QuarantineLog | None = None,
    ) -> None:
        self.queue = queue
        self.log = log
        self.tags = tags
        self.clock = clock
        self.quarantined = quarantine
        self.errors = Counter[tuple[str, str]]()  # (source, cause) -> count
        self._default = SourceSink(self, "")
        self._closed = False

    def close(self) -> None:
        """Take no more input: a collector still delivering after its stop deadline is treated
        as cancelled (nothing appended, nothing acknowledged), so what the engine drained is
        all the input there is."""
        self._closed = True

    def bind(self, source: str) -> SourceSink:
        return SourceSink(self, source)

    async def deliver(self, route: Route, source: str, samples: Sequence[Sample]) -> None:
        """Append ``samples`` to the input log and queue them; return once they are durable."""
        if not samples:
            return
        batch = SampleBatch.from_samples(self.tags, samples)
        await self.queue.room(len(batch))
        if self._closed:
            raise asyncio.CancelledError
        wm = None if route == Route.MARKER else min(int(batch.ts.max()), self.clock())
        durable = self.log.submit_input(route, source, wm, batch)
        self.queue.put_nowait(Entry(route, source, wm, batch, durable))
        await asyncio.shield(durable)  # a cancelled producer leaves the record to the engine

    def beat(self, source: str, ts: int) -> None:
        """A heartbeat, capped at its arrival: in the log and the queue, behind what came before."""
        if self._closed:
            return
        wm = min(ts, self.clock())
        self.queue.put_nowait(Entry(Route.HEARTBEAT, source, wm, None, self.log.submit_input(
            Route.HEARTBEAT, source, wm, None
        )))  # fmt: skip

    # -- the unnamed source's sink -----------------------------------------------------------------

    async def put(self, samples: Sequence[Sample]) -> None:
        await self._default.put(samples)

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        await self._default.put_historical(samples)

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        await self._default.put_markers(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self.beat(source, ts)

    def error(self, source: str, error: SourceError) -> None:
        self.errors[(source, type(error).__name__)] += 1  # the collector runner already logged it once

    def quarantine(self, source: str, cause: str, samples: Sequence[Sample]) -> None:
        if self.quarantined is not None:
            self.quarantined.write(source, cause, samples, self.clock())


class SourceSink:
    """One source's view of the pipeline sink (a QualitySink that can also quarantine)."""

    def __init__(self, parent: PipelineSink, source: str) -> None:
        self.parent = parent
        self.source = source

    async def put(self, samples: Sequence[Sample]) -> None:
        await self.parent.deliver(Route.LIVE, self.source, samples)

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        """Samples a device replays from its buffer: evaluated and stored, never pushed live."""
        await self.parent.deliver(Route.HISTORICAL, self.source, samples)

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        """Watchdog staleness and reconnect gaps: stored and shown, never evaluated (they would
        reset ``stale:`` rules, which count samples of any quality)."""
        await self.parent.deliver(Route.MARKER, self.source, samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self.parent.beat(self.source, ts)

    def error(self, source: str, error: SourceError) -> None:
        self.parent.error(self.source, error)

    def quarantine(self, source: str, cause: str, samples: Sequence[Sample]) -> None:
        self.parent.quarantine(self.source, cause, samples)
