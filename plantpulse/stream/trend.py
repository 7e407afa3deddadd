"""The recent samples the pipeline holds, for the trend a raise event carries (pure, numpy).

A raise event's ``trend`` summarises the tag's usable samples (not bad) over the rule's ``for``
window before ``raised_at`` (both ends included): first, last, min, max and how many. The
pipeline had those samples a moment before, so it keeps the recent batches (bounded by time,
the longest ``for`` of any rule, and by ``max_samples``) and computes trends only for raises,
all of a micro-batch's at once: one pass over the held columns picks the raised tags' rows,
then each raise looks at its own few rows.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np

from plantpulse.alerts import AlertEvent, Trend
from plantpulse.samples import F64, I32, I64, Quality, SampleBatch

__all__ = ["TrendWindow"]


class TrendWindow:
    def __init__(self, span: int, max_samples: int = 1_000_000) -> None:
        self.span = span  # ns: the longest window asked for
        self.max_samples = max_samples
        self._parts: deque[tuple[int, I64, I32, F64]] = deque()  # (newest ts, ts, tag, value) of usable rows
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def add(self, batch: SampleBatch, watermark: int | None) -> None:
        """Keep the usable rows of ``batch``; forget what is older than ``span`` before the
        watermark, and the oldest batches beyond ``max_samples``."""
        if self.span <= 0:
            return
        if len(batch):
            ok = batch.quality != Quality.BAD
            ts, tag, value = batch.ts[ok], batch.tag[ok], batch.value[ok]
            if len(ts):
                self._parts.append((int(ts.max()), ts, tag, value))
                self._held += len(ts)
        horizon = None if watermark is None else watermark - self.span
        while self._parts and (
            self._held > self.max_samples or (horizon is not None and self._parts[0][0] < horizon)
        ):
            self._held -= len(self._parts.popleft()[1])

    def fill(self, events: Sequence[AlertEvent], tag_id: dict[str, int]) -> list[AlertEvent]:
        """``events`` with ``trend`` set on each raise that has a window and usable samples in it."""
        wanted = [
            i for i, ev in enumerate(events) if ev.kind == "raised" and ev.window > 0 and ev.tag in tag_id
        ]
        if not wanted or not self._parts:
            return list(events)
        ids = np.array(sorted({tag_id[events[i].tag] for i in wanted}), dtype=np.int32)
        ts = np.concatenate([p[1] for p in self._parts])
        tag = np.concatenate([p[2] for p in self._parts])
        value = np.concatenate([p[3] for p in self._parts])
        hot = np.isin(tag, ids)
        ts, tag, value = ts[hot], tag[hot], value[hot]
        out = list(events)
        for i in wanted:
            ev = events[i]
            sel = (tag == tag_id[ev.tag]) & (ts >= ev.raised_at - ev.window) & (ts <= ev.raised_at)
            if not sel.any():
                continue
            t, v = ts[sel], value[sel]
            order = np.argsort(t, kind="stable")
            first, last = float(v[order[0]]), float(v[order[-1]])
            trend = Trend(first, last, float(v.min()), float(v.max()), len(v), ev.window)
            out[i] = dataclasses.replace(ev, trend=trend)
        return out
