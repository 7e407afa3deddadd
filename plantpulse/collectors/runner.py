"""The one runner that owns a collector's life (Home Assistant's update coordinator, for devices).

Collectors only connect, read or stream, and raise. The runner

* calls a StreamingCollector's ``run(sink)`` again after SourceUnavailable, waiting an
  exponential, capped, jittered backoff; AuthenticationError waits ``auth_retry`` (>= 60 s by
  default) because retrying refused credentials fast only locks accounts and fills logs;
* calls a PolledCollector's ``read()`` every ``interval`` under ``timeout``; a failing read
  delivers every tag of the source as a bad sample (rules see "unknown", never a stale good
  value) and is counted; it then backs off like a stream;
* tracks availability and logs ONCE when a source goes away (``name (address): unavailable:
  why``) and ONCE when it comes back; further failures of the same outage log at debug;
* counts samples, bad-quality samples, reconnects and errors by cause, readable at any time
  as an immutable ``SourceStatus`` snapshot;
* closes the collector when cancelled (cancellation is the clean stop).

Time is injected (``sleep``, ``clock``, ``rng``) so tests step through backoffs without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from plantpulse.collectors.base import PolledCollector, Sink, StreamingCollector
from plantpulse.errors import AuthenticationError, SourceError, SourceUnavailable
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import format_duration

__all__ = ["Backoff", "CollectorRunner", "SourceStatus", "cause_of"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays in seconds: ``initial * factor**attempt`` capped at ``maximum``, each
    multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` so many sources that lost the
    same network do not reconnect in lockstep."""

    initial: float = 0.5
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2
    auth_retry: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass(frozen=True)
class SourceStatus:
    """What the board and ``plantpulse status`` show for one source; a snapshot, never live."""

    name: str
    address: str
    available: bool | None  # None until the first data, heartbeat or failure
    since: float | None  # runner clock of the last availability change
    last_error: str | None
    samples: int
    bad_samples: int
    heartbeats: int
    reconnects: int
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


def cause_of(error: SourceError) -> str:
    """The counter an error goes to: ``unavailable``, ``authentication``, or the subclass' cause."""
    if isinstance(error, AuthenticationError):
        return "authentication"
    if isinstance(error, SourceUnavailable):
        return "unavailable"
    return str(getattr(error, "cause", "source"))


def _reason(error: SourceError) -> str:
    return str(error).removeprefix(f"{error.source} ({error.address}): ")


class CollectorRunner:
    """Runs one collector until cancelled; ``status()`` reads its counters."""

    def __init__(
        self,
        collector: StreamingCollector | PolledCollector,
        sink: Sink,
        *,
        address: str = "",
        interval: float | None = None,
        timeout: float = 5.0,
        tags: Sequence[str] = (),
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        """``interval`` set means polled (``collector.read``), else streaming (``collector.run``).
        ``tags`` are the polled source's tags, marked bad when a read fails."""
        self.collector = collector
        self.name = collector.name
        self.address = address or str(getattr(collector, "address", ""))
        self._sink = sink
        self._interval = interval
        self._timeout = timeout
        self._tags = tuple(tags)
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self._wallclock = wallclock
        self._rng = rng or random.Random()
        self._available: bool | None = None
        self._since: float | None = None
        self._down_kind: str | None = None
        self._last_error: str | None = None
        self._samples = 0
        self._bad = 0
        self._heartbeats = 0
        self._reconnects = 0
        self._errors: dict[str, int] = {}
        self._logged: set[str] = set()
        self._delivered = False

    def status(self) -> SourceStatus:
        return SourceStatus(
            name=self.name,
            address=self.address,
            available=self._available,
            since=self._since,
            last_error=self._last_error,
            samples=self._samples,
            bad_samples=self._bad,
            heartbeats=self._heartbeats,
            reconnects=self._reconnects,
            errors=MappingProxyType(dict(self._errors)),
        )

    async def run(self) -> None:
        """Until cancelled; the collector is closed on the way out."""
        try:
            if self._interval is None:
                await self._stream()
            else:
                await self._poll(self._interval)
        finally:
            await self.collector.close()

    # -- the two shapes -------------------------------------------------------------------------

    async def _stream(self) -> None:
        collector = self.collector
        assert hasattr(collector, "run"), f"{self.name}: a streaming collector needs run(sink)"
        attempt = 0
        sink = _CountingSink(self)
        while True:
            self._delivered = False
            try:
                await collector.run(sink)
                error: SourceError = SourceUnavailable(self.name, self.address, "stream ended")
            except SourceError as e:
                error = e
            if self._delivered:
                attempt = 0  # the connection worked: start the backoff over
            await self._sleep(self._failed(error, attempt))
            attempt += 1
            self._reconnects += 1

    async def _poll(self, interval: float) -> None:
        collector = self.collector
        assert hasattr(collector, "read"), f"{self.name}: a polled collector needs read()"
        attempt = 0
        while True:
            started = self._clock()
            try:
                async with asyncio.timeout(self._timeout):
                    samples = await collector.read()
            except TimeoutError:
                error: SourceError | None = SourceUnavailable(
                    self.name, self.address, f"read timed out after {self._timeout:g}s"
                )
            except SourceError as e:
                error = e
            else:
                error = None
            if error is None:
                attempt = 0
                await self._deliver(samples)
                delay = max(0.0, interval - (self._clock() - started))
            else:
                await self._deliver(
                    [Sample(self._wallclock(), tag, math.nan, Quality.BAD) for tag in self._tags]
                )
                delay = max(interval, self._failed(error, attempt))
                attempt += 1
            await self._sleep(delay)

    # -- bookkeeping ----------------------------------------------------------------------------

    async def _deliver(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        self._samples += len(samples)
        self._bad += sum(1 for s in samples if s.quality == Quality.BAD)
        if any(s.quality != Quality.BAD for s in samples):
            self._up()
        await self._sink.put(samples)

    def _heartbeat(self, source: str, ts: int) -> None:
        self._heartbeats += 1
        self._up()
        self._sink.heartbeat(source, ts)

    def _error(self, source: str, error: SourceError) -> None:
        """A counted, non-fatal error from inside a collector (a bad tag, dropped samples)."""
        cause = cause_of(error)
        self._errors[cause] = self._errors.get(cause, 0) + 1
        self._last_error = str(error)
        text = str(error)
        if text not in self._logged and len(self._logged) < 1000:
            self._logged.add(text)
            log.warning("%s", text)
        self._sink.error(source, error)

    def _up(self) -> None:
        self._delivered = True
        if self._available is True:
            return
        now = self._clock()
        if self._available is False:
            down = format_duration(round((now - (self._since or now)) * 1e9))
            log.info("%s (%s): available again after %s", self.name, self.address, down)
        self._available, self._since, self._down_kind = True, now, None

    def _failed(self, error: SourceError, attempt: int) -> float:
        """Count and log the failure; return how long to wait before the next attempt."""
        cause = cause_of(error)
        self._errors[cause] = self._errors.get(cause, 0) + 1
        self._last_error = str(error)
        kind = "authentication failed" if isinstance(error, AuthenticationError) else "unavailable"
        if self._available is not False or self._down_kind != kind:
            # once per outage (again only if it turns into a different kind of failure)
            log.warning("%s (%s): %s: %s", self.name, self.address, kind, _reason(error))
            if self._available is not False:
                self._since = self._clock()
            self._available, self._down_kind = False, kind
        else:
            log.debug("%s (%s): still %s: %s", self.name, self.address, kind, _reason(error))
        self._sink.error(self.name, error)
        if isinstance(error, AuthenticationError):
            return max(self._backoff.auth_retry, self._backoff.delay(attempt, self._rng))
        return self._backoff.delay(attempt, self._rng)


class _CountingSink:
    """The sink a streaming collector sees: counts and tracks availability, then forwards."""

    def __init__(self, runner: CollectorRunner) -> None:
        self._runner = runner

    async def put(self, samples: Sequence[Sample]) -> None:
        await self._runner._deliver(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self._runner._heartbeat(source, ts)

    def error(self, source: str, error: SourceError) -> None:
        self._runner._error(source, error)
