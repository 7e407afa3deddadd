"""Parameter-change trace ("过程留痕"): who changed which setpoint or recipe value, and when.

Tags declared as parameters (``parameters:`` globs in a KPI file) are watched; every good
sample whose value differs from the tag's previous good value is a change ``(at, old, new)``.
Bad samples change nothing (a sensor outage is not an operator's edit), the first value ever
seen is a baseline, not a change, and samples before ``start`` only set that baseline.

    tracker = ParamTracker(patterns, tags, start=t0)
    changes = tracker.process(batch)                  # pure: numpy over the batch, no clock
    changes = with_on_shift(changes, roster)          # the roster snapshot at each change
    tracker = ParamTracker.load(patterns, tags, t0, tracker.dump())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from plantpulse.people.roster import Roster
from plantpulse.rules.arrays import F64, I64, NONE, B, fj, grow, jf
from plantpulse.rules.model import glob_regex
from plantpulse.samples import Quality, SampleBatch, TagRegistry, asset_of
from plantpulse.timefmt import iso_ms

__all__ = ["ParamChange", "ParamTracker", "trace", "with_on_shift"]


@dataclass(frozen=True, slots=True)
class ParamChange:
    at: int
    tag: str
    old: float
    new: float
    on_shift: dict[str, list[str]] = field(default_factory=dict)

    @property
    def asset(self) -> str:
        return asset_of(self.tag)

    def row(self) -> dict[str, Any]:
        return {"at": iso_ms(self.at), "tag": self.tag, "asset": self.asset, "old": self.old, "new": self.new,
                "on_shift": self.on_shift}  # fmt: skip


class ParamTracker:
    def __init__(self, patterns: Sequence[str], tags: TagRegistry, *, start: int) -> None:
        self.patterns = [glob_regex(p.strip("/")) for p in patterns]
        self.tags = tags
        self.start = int(start)
        self._seen = 0
        self.param: B = np.zeros(0, dtype=np.bool_)
        self.last: F64 = np.zeros(0, dtype=np.float64)
        self.last_ts: I64 = np.zeros(0, dtype=np.int64)

    def _sync(self) -> None:
        n = len(self.tags)
        self.param = grow(self.param, n, False)
        self.last = grow(self.last, n, np.nan)
        self.last_ts = grow(self.last_ts, n, NONE)
        while self._seen < n:
            name = self.tags.name(self._seen)
            self.param[self._seen] = any(p.match(name) for p in self.patterns)
            self._seen += 1

    def process(self, batch: SampleBatch) -> list[ParamChange]:
        """Changes in ``batch`` (any order), oldest first."""
        self._sync()
        if len(batch) == 0:
            return []
        tag = batch.tag.astype(np.intp)
        keep = self.param[tag] & (batch.quality != Quality.BAD) & ~np.isnan(batch.value)
        if not keep.any():
            return []
        tg, ts, v = tag[keep], batch.ts[keep], batch.value[keep]
        late = ts < self.last_ts[tg]
        if late.any():
            tg, ts, v = tg[~late], ts[~late], v[~late]
        o = np.lexsort((ts, tg))
        tg, ts, v = tg[o], ts[o], v[o]
        first = np.ones(len(tg), dtype=np.bool_)
        first[1:] = tg[1:] != tg[:-1]
        prev = np.empty_like(v)
        prev[1:] = v[:-1]
        prev[first] = self.last[tg[first]]
        changed = np.flatnonzero(~np.isnan(prev) & (prev != v) & (ts >= self.start))
        last = np.ones(len(tg), dtype=np.bool_)
        last[:-1] = first[1:]
        self.last[tg[last]], self.last_ts[tg[last]] = v[last], ts[last]
        out = [
            ParamChange(t, self.tags.name(g), p, x)
            for t, g, p, x in zip(
                ts[changed].tolist(),
                tg[changed].tolist(),
                prev[changed].tolist(),
                v[changed].tolist(),
                strict=True,
            )
        ]
        out.sort(key=lambda c: (c.at, c.tag))
        return out

    def dump(self) -> dict[str, Any]:
        n = len(self.tags)
        self._sync()
        known = [i for i in range(n) if self.param[i] and self.last_ts[i] != NONE]
        return {"last": {self.tags.name(i): [int(self.last_ts[i]), jf(float(self.last[i]))] for i in known}}

    @classmethod
    def load(
        cls, patterns: Sequence[str], tags: TagRegistry, start: int, data: dict[str, Any]
    ) -> ParamTracker:
        for name in data["last"]:
            tags.id(name)
        self = cls(patterns, tags, start=start)
        self._sync()
        for name, (t, v) in data["last"].items():
            i = tags.id(name)
            self.last_ts[i], self.last[i] = t, fj(v)
        return self


def with_on_shift(changes: Sequence[ParamChange], roster: Roster) -> list[ParamChange]:
    """Each change with who held each role for its asset at that instant."""
    return [replace(c, on_shift=roster.on_shift(c.asset, c.at)) for c in changes]


def trace(patterns: Sequence[str], tags: TagRegistry, batch: SampleBatch, *, start: int) -> list[ParamChange]:
    """Every change in a finite input (samples before ``start`` only set baselines)."""
    return ParamTracker(patterns, tags, start=start).process(batch)
