"""Data quality that no single message carries: staleness, gaps and replayed history (pure).

Three pieces, each time-in/decisions-out with no clock, no I/O and no asyncio, so the runner,
a collector and tests drive them the same way:

``Watchdog``
    Per-tag expected update interval. ``observe`` records arrivals; ``due(now)`` returns one
    bad ``stale`` sample per tag and outage (NaN, quality bad) at ``last_ts + interval``, the
    event time from which the tag's value can no longer be trusted. A new arrival ends the
    outage. Because a ``stale:`` rule counts samples of any quality, watchdog samples must not
    be fed to the rules engine (they would restart its timer): the runner sends them through
    ``put_markers`` to the store and the board, which is what they are for.

``GapMarker``
    After each reconnect the runner records one marker: ``Sample(ts=reconnected_at,
    tag="_gaps/<source>", value=seconds disconnected, quality=UNCERTAIN)``. It is a plain
    sample so every store keeps it without a schema change and the board and rules can use it;
    UNCERTAIN says "data in the window before ts may be missing" (with a persistent QoS 1
    session the broker usually fills the gap, so it is not BAD).

``Historical``
    Samples older than the newest live sample already delivered for their tag are replays
    from a device or gateway buffer (store-and-forward, Sparkplug ``is_historical``). They
    belong in the store and in backfilled KPIs but must not raise pushes a second time:
    ``split`` separates them; the collector hands them to its ``historical`` sink (see
    docs/mqtt.md "Historical data") instead of the live one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import NS_PER_S

__all__ = ["GAP_TAG_PREFIX", "GapMarker", "Historical", "IntervalOf", "TagIntervals", "Watchdog"]

GAP_TAG_PREFIX = "_gaps/"


@dataclass(slots=True)
class _Seen:
    interval: int
    last_ts: int
    stale: bool = False


IntervalOf = Callable[[str], int | None]
"""tag -> expected update interval (ns), or None: the tag is not watched."""


class TagIntervals:
    """Which interval watches a tag: exact names first, then patterns in order, then a default.

    Patterns are full-match regular expressions; MQTT tags are only known once their topics
    arrive, so a subscription's tag template becomes a pattern (``mqtt_config.template_pattern``).
    A pattern's interval may be None: tags it matches are not watched."""

    def __init__(
        self,
        exact: Mapping[str, int] | None = None,
        patterns: Sequence[tuple[str, int | None]] = (),
        default: int | None = None,
    ) -> None:
        self.exact = dict(exact or {})
        self.patterns = [(re.compile(p), interval) for p, interval in patterns]
        self.default = default

    def __call__(self, tag: str) -> int | None:
        found = self.exact.get(tag)
        if found is not None:
            return found
        for pattern, interval in self.patterns:
            if pattern.fullmatch(tag):
                return interval
        return self.default

    def __bool__(self) -> bool:
        """False when nothing can ever be watched (the runner then keeps no watchdog)."""
        return bool(self.exact) or self.default is not None or any(i is not None for _, i in self.patterns)


class Watchdog:
    """Marks tags stale once per outage when no update arrives within their expected interval.

    ``intervals`` gives per-tag intervals (ns) as a mapping or a resolver such as
    ``TagIntervals``; tags it does not name use ``default`` (None: such tags are not watched).
    Each tag is resolved once, on its first arrival."""

    def __init__(
        self, intervals: Mapping[str, int] | IntervalOf | None = None, default: int | None = None
    ) -> None:
        if intervals is None or isinstance(intervals, Mapping):
            table = dict(intervals or {})
            self._interval_of: IntervalOf = lambda tag: table.get(tag, default)
        else:
            resolve = intervals
            self._interval_of = lambda tag: _or(resolve(tag), default)
        self._seen: dict[str, _Seen] = {}
        self._unwatched: set[str] = set()

    def watch(self, tags: Iterable[str], at: int) -> None:
        """Start watching tags known in advance as if they had arrived at ``at``, so a tag that
        never reports at all is marked stale too (already watched tags are left alone)."""
        for tag in tags:
            if tag not in self._seen and tag not in self._unwatched:
                interval = self._interval_of(tag)
                if interval is None:
                    self._unwatched.add(tag)
                else:
                    self._seen[tag] = _Seen(interval, at)

    def observe(self, samples: Iterable[Sample], at: int | None = None) -> bool:
        """Record arrivals: at their sample time, or all at ``at`` (the arrival time, which a
        runner prefers: device clocks drift). True when a tag started being watched or came
        back from stale, i.e. when ``next_due`` may have moved earlier (a timer must re-arm)."""
        rearm = False
        seen_of = self._seen
        for s in samples:
            seen = seen_of.get(s.tag)
            ts = s.ts if at is None else at
            if seen is None:
                if s.tag in self._unwatched:
                    continue
                interval = self._interval_of(s.tag)
                if interval is None:
                    self._unwatched.add(s.tag)
                    continue
                seen_of[s.tag] = _Seen(interval, ts)
                rearm = True
            elif ts >= seen.last_ts:
                seen.last_ts = ts
                if seen.stale:
                    seen.stale = False
                    rearm = True
        return rearm

    def due(self, now: int) -> list[Sample]:
        """Stale samples for tags silent for longer than their interval at ``now`` (ns)."""
        out: list[Sample] = []
        for tag, seen in self._seen.items():
            if not seen.stale and now - seen.last_ts > seen.interval:
                seen.stale = True
                out.append(Sample(seen.last_ts + seen.interval, tag, math.nan, Quality.BAD))
        out.sort(key=lambda s: (s.ts, s.tag))
        return out

    def next_due(self) -> int | None:
        """The earliest instant at which ``due`` can return something (for a timer)."""
        pending = [s.last_ts + s.interval for s in self._seen.values() if not s.stale]
        return min(pending) + 1 if pending else None

    def stale_tags(self) -> list[str]:
        return sorted(tag for tag, s in self._seen.items() if s.stale)


def _or(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


@dataclass(frozen=True, slots=True)
class GapMarker:
    """A source was disconnected from ``lost_at`` until ``reconnected_at`` (ns)."""

    source: str
    lost_at: int
    reconnected_at: int

    @property
    def tag(self) -> str:
        return f"{GAP_TAG_PREFIX}{self.source}"

    def sample(self) -> Sample:
        seconds = max(0, self.reconnected_at - self.lost_at) / NS_PER_S
        return Sample(self.reconnected_at, self.tag, seconds, Quality.UNCERTAIN)


@dataclass(slots=True)
class Historical:
    """Splits live samples from replayed ones by the newest live timestamp per tag."""

    newest: dict[str, int] = field(default_factory=dict)

    def split(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
        """``(live, historical)``; a sample is historical when older than the newest live
        sample of its tag already seen (equal timestamps are live: a repeated reading)."""
        live: list[Sample] = []
        old: list[Sample] = []
        newest = self.newest
        for s in samples:
            last = newest.get(s.tag)
            if last is not None and s.ts < last:
                old.append(s)
            else:
                newest[s.tag] = s.ts
                live.append(s)
        return live, old
