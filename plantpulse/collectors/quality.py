"""Data quality that no single message carries: staleness, gaps and replayed history (pure).

Three pieces, each time-in/decisions-out with no clock, no I/O and no asyncio, so the runner,
a collector and tests drive them the same way:

``Watchdog``
    Per-tag expected update interval. ``observe`` records arrivals; ``due(now)`` returns one
    bad ``stale`` sample per tag and outage (NaN, quality bad) at ``last_ts + interval``, the
    event time from which the tag's value can no longer be trusted. A new arrival ends the
    outage. Because a ``stale:`` rule counts samples of any quality, watchdog samples must not
    be fed to the rules engine for tags that have such a rule (they would restart its timer):
    send them to the store and the board, which is what they are for.

``GapMarker``
    After each reconnect the collector records one marker: ``Sample(ts=reconnected_at,
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import NS_PER_S

__all__ = ["GAP_TAG_PREFIX", "GapMarker", "Historical", "Watchdog"]

GAP_TAG_PREFIX = "_gaps/"


@dataclass(slots=True)
class _Seen:
    interval: int
    last_ts: int
    stale: bool = False


class Watchdog:
    """Marks tags stale once per outage when no update arrives within their expected interval.

    ``intervals`` gives per-tag intervals (ns); tags not listed use ``default`` (None: such
    tags are not watched)."""

    def __init__(self, intervals: Mapping[str, int] | None = None, default: int | None = None) -> None:
        self._intervals = dict(intervals or {})
        self._default = default
        self._seen: dict[str, _Seen] = {}

    def observe(self, samples: Iterable[Sample]) -> None:
        """Record arrivals (by sample time). Watchdog samples themselves are ignored."""
        for s in samples:
            interval = self._intervals.get(s.tag, self._default)
            if interval is None:
                continue
            seen = self._seen.get(s.tag)
            if seen is None:
                self._seen[s.tag] = _Seen(interval, s.ts)
            elif s.ts >= seen.last_ts:
                seen.last_ts, seen.stale = s.ts, False

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
