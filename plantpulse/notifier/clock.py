"""Wall time for the notifier, injected so tests step time instead of sleeping.

``SystemClock`` is the real one; ``ManualClock`` is its test double, shipped beside it (as
httpx ships its mock transport): escalation timelines are tested by moving it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Protocol

NS_PER_S = 10**9


class Clock(Protocol):
    """Wall time in UTC ns and a way to wait for an instant."""

    def now(self) -> int: ...

    async def sleep_until(self, at: int) -> None: ...


class SystemClock:
    def now(self) -> int:
        return time.time_ns()

    async def sleep_until(self, at: int) -> None:
        delay = (at - self.now()) / NS_PER_S
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when told (``set``/``advance``), waking exactly the sleepers due."""

    def __init__(self, start: int) -> None:
        self._now = start
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> int:
        return self._now

    def set(self, at: int) -> None:
        if at < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = at
        while self._sleepers and self._sleepers[0][0] <= at:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, ns: int) -> None:
        self.set(self._now + ns)

    async def sleep_until(self, at: int) -> None:
        if at <= self._now:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (at, self._seq, fut))
        await fut


__all__ = ["NS_PER_S", "Clock", "ManualClock", "SystemClock"]
