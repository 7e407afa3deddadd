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
* counts samples, bad-quality samples, reconnect attempts, reconnections (available, lost and
  back) and errors by cause, readable at any time as an immutable ``SourceStatus`` snapshot;
* admits samples (``admission.Admission``, for every kind the same way): a sample stamped
  outside ``[arrival - accept.behind, arrival + accept.ahead]``, or of a new tag beyond
  ``accept.max_tags``, is quarantined (counted per cause, logged once per cause, handed to the
  sink's ``quarantine`` when it has one), never delivered: a bad clock cannot move the
  watermark nor a wildcard subscription create tags without bound;
* owns data quality that no collector can see alone, for every kind the same way:
  a per-tag watchdog (``stale_after``: one bad marker per tag and outage when nothing arrives
  within its interval, on the arrival clock because device clocks drift) and one gap marker
  (``_gaps/<source>``, outage seconds) after each reconnect. Both go to ``put_markers``:
  stored and shown, never evaluated, so engine ``stale:`` rules keep their own timing;
* hands the collector ``self.sink``, a counting QualitySink: ``put_historical`` (device
  buffer replays) is counted and forwarded to the downstream sink's ``put_historical``;
* closes the collector when cancelled (cancellation is the clean stop).

The watchdog and marker delivery run in the runner's one timer task (no sleep loops in
collectors). Time is injected (``sleep``, ``clock``, ``wallclock``, ``rng``) so tests step
through backoffs and watchdog deadlines without waiting.
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
from typing import Any

from plantpulse.collectors.admission import AHEAD, TAG_LIMIT, Accept, Admission
from plantpulse.collectors.base import PolledCollector, QualitySink, QuarantineSink, Sink, StreamingCollector
from plantpulse.collectors.base import put_historical as _put_historical
from plantpulse.collectors.base import put_markers as _put_markers
from plantpulse.collectors.quality import GapMarker, IntervalOf, Watchdog
from plantpulse.errors import AuthenticationError, SourceError, SourceUnavailable
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import NS_PER_S, format_duration, iso_ms

__all__ = ["Backoff", "CollectorRunner", "SourceStatus", "cause_of"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Collector = StreamingCollector | PolledCollector


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
    historical: int = 0  # samples replayed from a device buffer (put_historical)
    markers: int = 0  # watchdog and gap markers emitted
    stale: tuple[str, ...] = ()  # tags the watchdog currently holds stale
    quarantined: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # by cause
    reconnected: int = 0  # times it was available, went away and came back (not: attempts)


def cause_of(error: SourceError) -> str:
    """The counter an error goes to: ``unavailable``, ``authentication``, or the subclass' cause."""
    if isinstance(error, AuthenticationError):
        return "authentication"
    if isinstance(error, SourceUnavailable):
        return "unavailable"
    return str(getattr(error, "cause", "source"))


def _why(cause: str, s: Sample, arrival: int, admission: Admission) -> str:
    accept = admission.accept
    if cause == TAG_LIMIT:
        return f"tag {s.tag} would be tag number {admission.tags + 1} (accept.max_tags {accept.max_tags})"
    key, bound = ("ahead", accept.ahead) if cause == AHEAD else ("behind", accept.behind)
    where = f"{format_duration(abs(s.ts - arrival))} {'ahead of' if cause == AHEAD else 'behind'} its arrival"
    return f"{s.tag} at {_when(s.ts)} is {where} (accept.{key} {format_duration(bound)})"


def _when(ts: int) -> str:
    try:
        return iso_ms(ts)
    except (ValueError, OverflowError, OSError):
        return f"{ts} ns"


def _reason(error: SourceError) -> str:
    return str(error).removeprefix(f"{error.source} ({error.address}): ")


class CollectorRunner:
    """Runs one collector until cancelled; ``status()`` reads its counters."""

    def __init__(
        self,
        collector: Collector,
        sink: Sink,
        *,
        address: str = "",
        interval: float | None = None,
        timeout: float = 5.0,
        tags: Sequence[str] = (),
        stale_after: Mapping[str, int] | IntervalOf | None = None,
        accept: Accept | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        """``interval`` set means polled (``collector.read``), else streaming (``collector.run``).
        ``tags`` are the source's known tags: marked bad when a polled read fails, and watched
        from the start (a tag that never reports goes stale too). ``stale_after`` gives each
        tag's watchdog interval in ns (a mapping, or a resolver such as
        ``quality.TagIntervals``; None or empty: no watchdog). ``accept`` is the admission
        window and tag bound (default: ``Accept()``), judged on the ``wallclock``."""
        self.collector = collector
        self.sink: QualitySink = _CountingSink(self)
        """What the collector delivers to: counts, tracks availability, then forwards."""
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
        self._watchdog = Watchdog(stale_after) if stale_after else None
        self._lost_at: int | None = None  # wallclock (ns) at which an available source went away
        self._markers: list[Sample] = []  # waiting for the timer task (or the next delivery)
        self._wake = asyncio.Event()
        self._historical = 0
        self._marker_count = 0
        self._admission = Admission(accept or Accept(), self._tags)
        self._quarantined: dict[str, int] = {}
        self._reconnected = 0

    @classmethod
    def build(cls, make: Callable[[QualitySink], Collector], sink: Sink, **options: Any) -> CollectorRunner:
        """A runner whose collector is made with the runner's counting sink in hand, for
        collectors that deliver outside ``run(sink)`` (MQTT's ``historical=`` callback)."""
        relay = _CountingSink(None)
        runner = cls(make(relay), sink, **options)
        relay.bind(runner)
        runner.sink = relay
        return runner

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
            historical=self._historical,
            markers=self._marker_count,
            stale=tuple(self._watchdog.stale_tags()) if self._watchdog is not None else (),
            quarantined=MappingProxyType(dict(self._quarantined)),
            reconnected=self._reconnected,
        )

    async def run(self) -> None:
        """Until cancelled; the collector is closed on the way out."""
        timer = asyncio.create_task(self._timer(), name=f"{self.name} watchdog")
        try:
            if self._interval is None:
                await self._stream()
            else:
                await self._poll(self._interval)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
            await self.collector.close()

    # -- the two shapes -------------------------------------------------------------------------

    async def _stream(self) -> None:
        collector = self.collector
        assert hasattr(collector, "run"), f"{self.name}: a streaming collector needs run(sink)"
        attempt = 0
        sink = self.sink
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

    def _admit(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        """What ``accept`` lets through; the rest is counted, logged once per cause and
        handed to the sink's quarantine."""
        arrival = self._wallclock()
        admitted, refused = self._admission.split(samples, arrival)
        for cause, out in refused.items():
            seen = self._quarantined.get(cause, 0)
            self._quarantined[cause] = seen + len(out)
            if not seen:
                first = out[0]
                log.warning(
                    "%s (%s): sample quarantined (%s): %s; further ones for this cause are counted, "
                    "not logged",
                    self.name,
                    self.address,
                    cause,
                    _why(cause, first, arrival, self._admission),
                )
            if isinstance(self._sink, QuarantineSink):
                self._sink.quarantine(self.name, cause, out)
        return admitted

    async def _deliver(self, samples: Sequence[Sample]) -> None:
        samples = self._admit(samples) if samples else samples
        if not samples:
            return
        self._samples += len(samples)
        self._bad += sum(1 for s in samples if s.quality == Quality.BAD)
        if any(s.quality != Quality.BAD for s in samples):
            self._up()
        if self._watchdog is not None and self._watchdog.observe(samples, self._wallclock()):
            self._wake.set()  # a tag (re)joined the watch: the timer's deadline may be earlier
        if self._markers:
            await self._flush_markers()  # the gap marker goes ahead of the data that ended the gap
        await self._sink.put(samples)

    async def _deliver_historical(self, samples: Sequence[Sample]) -> None:
        """Replays are proof of life but not live arrivals: the watchdog does not see them."""
        samples = self._admit(samples) if samples else samples
        if not samples:
            return
        self._historical += len(samples)
        self._up()
        if self._markers:
            await self._flush_markers()
        await _put_historical(self._sink, samples)

    async def _deliver_markers(self, samples: Sequence[Sample]) -> None:
        if samples:
            self._marker_count += len(samples)
            await _put_markers(self._sink, samples)

    async def _flush_markers(self) -> None:
        markers, self._markers = self._markers, []
        await self._deliver_markers(markers)

    async def _timer(self) -> None:
        """The runner's one timer: delivers pending markers and wakes at the watchdog's next
        deadline (or when a delivery re-arms it); never polls."""
        wd = self._watchdog
        if wd is not None and self._tags:
            wd.watch(self._tags, self._wallclock())
        while True:
            self._wake.clear()
            if self._markers:
                await self._flush_markers()
            deadline = None
            if wd is not None:
                stale = wd.due(self._wallclock())
                if stale:
                    await self._deliver_markers(stale)
                deadline = wd.next_due()
            if self._wake.is_set() or self._markers:
                continue
            if deadline is None:
                await self._wake.wait()
            else:
                await self._wait((deadline - self._wallclock()) / NS_PER_S)

    async def _wait(self, seconds: float) -> None:
        """The injected sleep, cut short by ``_wake``."""
        sleeping = asyncio.ensure_future(self._sleep(max(0.0, seconds)))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()
            await asyncio.gather(sleeping, woken, return_exceptions=True)

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
        if not getattr(error, "logged", False) and text not in self._logged and len(self._logged) < 1000:
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
        if self._lost_at is not None:
            self._reconnected += 1
            self._markers.append(GapMarker(self.name, self._lost_at, self._wallclock()).sample())
            self._lost_at = None
            self._wake.set()  # a heartbeat-only recovery has no delivery to carry the marker
        self._available, self._since, self._down_kind = True, now, None

    def _failed(self, error: SourceError, attempt: int) -> float:
        """Count and log the failure; return how long to wait before the next attempt."""
        cause = cause_of(error)
        self._errors[cause] = self._errors.get(cause, 0) + 1
        self._last_error = str(error)
        kind = error.failure if isinstance(error, AuthenticationError) else "unavailable"
        if self._available is not False or self._down_kind != kind:
            # once per outage (again only if it turns into a different kind of failure)
            log.warning("%s (%s): %s: %s", self.name, self.address, kind, _reason(error))
            if self._available is True:
                self._lost_at = self._wallclock()  # a gap marker follows the next recovery
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
    """The sink a collector sees: counts and tracks availability, then forwards."""

    def __init__(self, runner: CollectorRunner | None) -> None:
        self._bound = runner

    def bind(self, runner: CollectorRunner) -> None:
        self._bound = runner

    @property
    def _runner(self) -> CollectorRunner:
        assert self._bound is not None, "a collector delivered before its runner existed"
        return self._bound

    async def put(self, samples: Sequence[Sample]) -> None:
        await self._runner._deliver(samples)

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        await self._runner._deliver_historical(samples)

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        await self._runner._deliver_markers(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self._runner._heartbeat(source, ts)

    def error(self, source: str, error: SourceError) -> None:
        self._runner._error(source, error)
