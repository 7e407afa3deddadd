"""Test helpers shared by the collector tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from plantpulse.errors import SourceError
from plantpulse.samples import Sample


class RecordingSink:
    """Records everything, by route (a QualitySink); ``wait_for(pred)`` returns once a recorded
    state satisfies ``pred``."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.historical: list[Sample] = []
        self.markers: list[Sample] = []
        self.heartbeats: list[int] = []
        self.errors: list[SourceError] = []
        self._changed = asyncio.Event()

    async def put(self, samples: Sequence[Sample]) -> None:
        self.samples.extend(samples)
        self._poke()

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        self.historical.extend(samples)
        self._poke()

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        self.markers.extend(samples)
        self._poke()

    def heartbeat(self, source: str, ts: int) -> None:
        self.heartbeats.append(ts)
        self._poke()

    def error(self, source: str, error: SourceError) -> None:
        self.errors.append(error)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()

    async def wait_for(self, pred: Callable[[RecordingSink], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()
