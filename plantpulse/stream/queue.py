"""The in-memory queue between the input log and the engine, bounded by samples held.

Overflow policy: backpressure. A producer waits for ``room`` *before* its chunk is appended to
the input log, so a slow engine or store slows the collectors down (OPC UA keeps queueing on
the server side, Modbus polls later, MQTT stops reading its socket) instead of growing memory
or dropping data silently.

Entries come in the order they were submitted to the input log, which is the spool's order:
the engine consumes them in exactly the order a restart replays them. Each entry carries its
route (``Route``), its source, its watermark contribution and the future that resolves once
it is durable (its spool position, or None when the spool refused it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from plantpulse.samples import SampleBatch
from plantpulse.store.records import Route
from plantpulse.store.spool import Appended

__all__ = ["Entry", "InputQueue", "Route"]


@dataclass(slots=True)
class Entry:
    route: Route
    source: str
    watermark: int | None
    batch: SampleBatch | None  # None for a heartbeat
    durable: Appended

    def __len__(self) -> int:
        return 0 if self.batch is None else len(self.batch)


class InputQueue:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._entries: deque[Entry] = deque()
        self._held = 0
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._not_empty = asyncio.Event()
        self.waits = 0  # how often a producer had to wait: backpressure made visible

    def __len__(self) -> int:
        """Samples held."""
        return self._held

    @property
    def empty(self) -> bool:
        return not self._entries

    async def room(self, n: int) -> None:
        """Wait until ``n`` more samples fit (a chunk larger than the capacity fits an empty queue)."""
        while self._held and self._held + n > self.capacity:
            self.waits += 1
            self._not_full.clear()
            await self._not_full.wait()

    def put_nowait(self, entry: Entry) -> None:
        """Append without waiting: call right after ``room`` (no await in between)."""
        self._entries.append(entry)
        self._held += len(entry)
        self._not_empty.set()

    async def get_batch(self, max_samples: int, linger: float) -> list[Entry]:
        """Wait up to ``linger`` seconds for the first entry, then take what is there, up to
        ``max_samples`` (an entry is never split, so a batch may exceed it by one entry)."""
        if not self._entries:
            self._not_empty.clear()
            try:
                await asyncio.wait_for(self._not_empty.wait(), linger)
            except TimeoutError:
                return []
        out: list[Entry] = []
        taken = 0
        while self._entries and (not out or taken + len(self._entries[0]) <= max_samples):
            entry = self._entries.popleft()
            out.append(entry)
            taken += len(entry)
        self._held -= taken
        self._not_full.set()
        return out
