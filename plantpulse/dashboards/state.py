"""What the live board shows, kept in memory as the pipeline runs.

Latest values live in numpy arrays indexed by tag id, updated per micro-batch with one
scatter (no per-sample Python); active alerts are a dict keyed by alert id. ``snapshot``
is the JSON the page renders; ``version`` lets the event stream send only on change.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.timefmt import iso_ms

_QUALITY = {int(q): q.name.lower() for q in Quality}


class BoardState:
    def __init__(self, tags: TagRegistry, site: str = "plant", recent: int = 50) -> None:
        self.tags = tags
        self.site = site
        self._ts = np.zeros(0, dtype=np.int64)
        self._value = np.zeros(0, dtype=np.float64)
        self._quality = np.zeros(0, dtype=np.uint8)
        self._seen = np.zeros(0, dtype=bool)
        self.active: dict[str, dict[str, Any]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.samples = 0
        self.version = 0

    def observe(self, batch: SampleBatch, events: Sequence[AlertEvent]) -> None:
        """Take the newest sample per tag of ``batch`` and apply alert raises and clears."""
        if len(batch):
            self._grow(len(self.tags))
            newest = np.lexsort((batch.ts, batch.tag))  # by tag, then time
            last = newest[np.r_[batch.tag[newest][1:] != batch.tag[newest][:-1], True]]
            tag = batch.tag[last]
            newer = batch.ts[last] >= self._ts[tag]
            tag, last = tag[newer], last[newer]
            self._ts[tag] = batch.ts[last]
            self._value[tag] = batch.value[last]
            self._quality[tag] = batch.quality[last]
            self._seen[tag] = True
            self.samples += len(batch)
        for ev in events:
            item = _alert_json(ev)
            if ev.kind == "raised":
                self.active[ev.alert_id] = item
            else:
                self.active.pop(ev.alert_id, None)
            self.recent.appendleft(item)
        if len(batch) or events:
            self.version += 1

    def _grow(self, n: int) -> None:
        if n <= len(self._ts):
            return
        extra = n - len(self._ts)
        self._ts = np.concatenate([self._ts, np.zeros(extra, np.int64)])
        self._value = np.concatenate([self._value, np.full(extra, np.nan)])
        self._quality = np.concatenate([self._quality, np.full(extra, Quality.BAD, np.uint8)])
        self._seen = np.concatenate([self._seen, np.zeros(extra, bool)])

    def snapshot(self) -> dict[str, Any]:
        """Assets with their signals' latest values, active alerts (newest first), recent events."""
        assets: dict[str, dict[str, Any]] = {}
        for tid in np.flatnonzero(self._seen):
            name = self.tags.name(int(tid))
            asset, _, signal = name.rpartition("/")
            value = float(self._value[tid])
            assets.setdefault(asset, {})[signal] = {
                "value": None if math.isnan(value) else value,
                "quality": _QUALITY[int(self._quality[tid])],
                "ts": iso_ms(int(self._ts[tid])),
            }
        active = sorted(self.active.values(), key=lambda a: a["raised_at"], reverse=True)
        alerting = {a["asset"] for a in active}
        return {
            "site": self.site,
            "version": self.version,
            "samples": self.samples,
            "assets": [{"asset": k, "alerting": k in alerting, "signals": assets[k]} for k in sorted(assets)],
            "active": active,
            "recent": list(self.recent),
        }


def _alert_json(ev: AlertEvent) -> dict[str, Any]:
    return {
        "id": ev.alert_id,
        "event": ev.kind,
        "rule": ev.rule,
        "tag": ev.tag,
        "asset": ev.asset,
        "severity": ev.severity,
        "message": ev.message,
        "value": None if math.isnan(ev.value) else ev.value,
        "raised_at": iso_ms(ev.raised_at),
        "at": iso_ms(ev.at),
    }
