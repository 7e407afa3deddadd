"""Streams of ``stale: D`` rules: an alert when a tag sent no sample (of any quality) for D.

The condition becomes true at ``t0 = last sample + D`` and, like every condition, must then
hold for ``for``: it fires at ``t0 + for`` when the next sample is at or after that time, or
when the watermark reaches it (SPEC §4 rules 3 and 4). It clears at the next sample's ts
(lifecycle.silence states it point by point).
Gaps are found with one vectorised difference per batch; Python only touches the gaps that
actually raise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.rules.arrays import NONE, fj, group_starts, jf, jt, tj
from plantpulse.rules.base import Rows, Seed, StreamSet, grow_all
from plantpulse.rules.model import Rule, Stale

_STATE = {"last_ts": NONE, "last_val": np.nan, "active": False}


class StaleStreams(StreamSet):
    def __init__(self, rule: Rule) -> None:
        super().__init__(rule, 1)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.last_val = np.zeros(0, dtype=np.float64)
        self.active = np.zeros(0, dtype=np.bool_)
        assert isinstance(rule.condition, Stale)
        self.gap = rule.condition.stale_ns + rule.for_ns

    def _grow(self, n: int) -> None:
        grow_all(self, n, _STATE)

    def _seed(self, s: int, seeds: list[Seed | None]) -> None:
        if seeds and seeds[0] is not None:
            self.last_ts[s], self.last_val[s] = seeds[0].ts, seeds[0].value

    def process(self, rows: Rows) -> list[AlertEvent]:
        rows = rows.by_time()
        row, s, _ = self.entries(rows)
        n = len(row)
        if n == 0:
            return []
        t = rows.ts[row]
        v = rows.value[row]
        gst = group_starts(s)
        gs = s[gst]
        gend = np.append(gst[1:], n) - 1
        pt = np.empty_like(t)
        pv = np.empty_like(v)
        pt[1:], pv[1:] = t[:-1], v[:-1]
        pt[gst], pv[gst] = self.last_ts[gs], self.last_val[gs]
        events: list[AlertEvent] = []
        was_active = self.active[gs]
        for sid, at in zip(gs[was_active].tolist(), t[gst[was_active]].tolist(), strict=True):
            events.append(self._clear(sid, at))
        gap = (pt != NONE) & (t - pt >= self.gap)
        gap[gst[was_active]] = False  # that gap already raised through the watermark
        for i in np.flatnonzero(gap).tolist():
            sid = int(s[i])
            events.append(self._raise(sid, int(pt[i]) + self.gap, float(pv[i])))
            events.append(self._clear(sid, int(t[i])))
        self.last_ts[gs], self.last_val[gs] = t[gend], v[gend]
        return events

    def _raise(self, s: int, at: int, value: float, aux: float | None = None) -> AlertEvent:
        self.active[s] = True
        return super()._raise(s, at, value)

    def _clear(self, s: int, at: int) -> AlertEvent:
        self.active[s] = False
        return super()._clear(s, at)

    def advance(self, watermark: int) -> list[AlertEvent]:
        m = len(self.names)
        last = self.last_ts[:m]
        idx = np.flatnonzero((last != NONE) & ~self.active[:m])
        due = idx[last[idx] + self.gap <= watermark]
        return [
            self._raise(sid, int(self.last_ts[sid]) + self.gap, float(self.last_val[sid]))
            for sid in due.tolist()
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "last_ts": jt(int(self.last_ts[s])),
                "last_val": jf(float(self.last_val[s])),
                "active": bool(self.active[s]),
                **self._alert_state(s),
            }
            for s, name in enumerate(self.names)
        }

    def restore(self, state: dict[str, Any]) -> None:
        for name, st in state.items():
            s = self.index.get(name)
            if s is None:
                continue
            self.last_ts[s], self.last_val[s] = tj(st["last_ts"]), fj(st["last_val"])
            self.active[s] = st["active"]
            self._restore_alert(s, st)
