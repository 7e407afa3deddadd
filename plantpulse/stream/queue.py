"""A sample queue bounded by the number of samples it holds, drained as micro-batches.

Overflow policy: backpressure. ``put`` waits while the queue is full, so a slow engine or
store slows the collectors down (OPC UA keeps queueing on the server side, Modbus polls
later, MQTT stops reading its socket) instead of growing memory or dropping data silently.

Every chunk carries its route: live samples go to the engine, the store and pushes;
historical ones (replayed from a device's buffer) to the engine and the store but never to
live pushes; markers (watchdog staleness, reconnect gaps) only to the store and the board.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from plantpulse.samples import Sample


class Route(IntEnum):
    LIVE = 0
    HISTORICAL = 1
    MARKER = 2


@dataclass
class Drained:
    """One micro-batch's worth of samples, by route, each in arrival order."""

    live: list[Sample] = field(default_factory=list)
    historical: list[Sample] = field(default_factory=list)
    markers: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.live) + len(self.historical) + len(self.markers)

    def add(self, route: Route, samples: Sequence[Sample]) -> None:
        (self.live, self.historical, self.markers)[route].extend(samples)


class SampleQueue:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._chunks: deque[tuple[Route, Sequence[Sample]]] = deque()
        self._held = 0
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._not_empty = asyncio.Event()
        self.waits = 0  # how often a producer had to wait: backpressure made visible

    def __len__(self) -> int:
        return self._held

    async def put(self, samples: Sequence[Sample], route: Route = Route.LIVE) -> None:
        """Append; waits while full. A chunk larger than the capacity is admitted alone."""
        if not samples:
            return
        while self._held and self._held + len(samples) > self.capacity:
            self.waits += 1
            self._not_full.clear()
            await self._not_full.wait()
        self._chunks.append((route, samples))
        self._held += len(samples)
        self._not_empty.set()

    async def get_batch(self, max_samples: int, linger: float) -> Drained:
        """Wait up to ``linger`` seconds for the first sample, then take what is there,
        up to ``max_samples`` (a chunk is never split, so a batch may exceed it by one chunk)."""
        if not self._held:
            self._not_empty.clear()
            try:
                await asyncio.wait_for(self._not_empty.wait(), linger)
            except TimeoutError:
                return Drained()
        out = Drained()
        while self._chunks and (not len(out) or len(out) + len(self._chunks[0][1]) <= max_samples):
            route, chunk = self._chunks.popleft()
            out.add(route, chunk)
            self._held -= len(chunk)
        self._not_full.set()
        return out
