"""Samples as columns from the socket on: a builder decoders append to, and the live/history split.

A streaming collector receives thousands of readings per read burst. Building a ``Sample``
object per reading only to take it apart again into ``SampleBatch`` columns costs more than
decoding the message, so decoders append plain numbers to four typed arrays (``Columns``)
with tag names interned once per tag in a ``TagRegistry``; ``Columns.take`` hands the burst
over as one ``SampleBatch`` (zero-copy from the arrays). ``to_samples`` is the one place that
builds row objects, for sinks that still take ``Sample`` lists.

``LiveSplit`` is the columnar form of ``quality.Historical``: with the batch sorted by time,
a reading is historical when older than the newest live reading already seen for its tag,
which one vectorised comparison against a per-tag array decides.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry

__all__ = ["Columns", "LiveSplit", "to_samples"]

_QUALITY = tuple(Quality)
_OLDEST = np.iinfo(np.int64).min


class Columns:
    """Appendable columns ``ts`` (int64 ns), ``tag`` (int32 id in ``tags``), ``value`` (float64)
    and ``quality`` (uint8). Decoders bind the arrays' ``append`` methods once per message."""

    __slots__ = ("quality", "tag", "tags", "ts", "value")

    def __init__(self, tags: TagRegistry) -> None:
        self.tags = tags
        self.ts = array("q")
        self.tag = array("i")
        self.value = array("d")
        self.quality = array("B")

    def __len__(self) -> int:
        return len(self.ts)

    def append(self, ts: int, tag: int, value: float, quality: int) -> None:
        self.ts.append(ts)
        self.tag.append(tag)
        self.value.append(value)
        self.quality.append(quality)

    def extend_samples(self, samples: Sequence[Sample]) -> None:
        """Row objects from a decoder that makes them (Sparkplug), interned here."""
        tid = self.tags.id
        for s in samples:
            self.append(s.ts, tid(s.tag), s.value, int(s.quality))

    def truncate(self, n: int) -> None:
        """Drop everything after the first ``n`` rows (a message rejected half-way)."""
        del self.ts[n:], self.tag[n:], self.value[n:], self.quality[n:]

    def take(self) -> SampleBatch:
        """Everything appended so far as one batch (NaN values made bad); starts empty again."""
        batch = SampleBatch.make(
            self.tags,
            np.frombuffer(self.ts, dtype=np.int64),
            np.frombuffer(self.tag, dtype=np.int32),
            np.frombuffer(self.value, dtype=np.float64),
            np.frombuffer(self.quality, dtype=np.uint8),
        )
        # the batch views the old arrays' buffers: fresh arrays, never a resize under a view
        self.ts, self.tag, self.value, self.quality = array("q"), array("i"), array("d"), array("B")
        return batch


def to_samples(batch: SampleBatch) -> list[Sample]:
    """Row objects for a sink that takes ``Sample`` lists (the boundary until sinks take batches)."""
    name = batch.tags.name
    names = [name(t) for t in batch.tag.tolist()]
    qualities = [_QUALITY[q] for q in batch.quality.tolist()]
    return list(map(Sample, batch.ts.tolist(), names, batch.value.tolist(), qualities))


class LiveSplit:
    """Splits a time-sorted batch into live and historical rows by the newest live timestamp
    per tag (equal timestamps are live: a repeated reading)."""

    def __init__(self) -> None:
        self._newest = np.full(0, _OLDEST, dtype=np.int64)

    def split(self, batch: SampleBatch) -> tuple[SampleBatch, SampleBatch | None]:
        """``(live, historical or None)``; ``batch`` must be sorted by ``ts`` (stable)."""
        if not len(batch):
            return batch, None
        need = len(batch.tags)
        if len(self._newest) < need:
            grown = np.full(max(need, 2 * len(self._newest)), _OLDEST, dtype=np.int64)
            grown[: len(self._newest)] = self._newest
            self._newest = grown
        old = batch.ts < self._newest[batch.tag]
        if old.any():
            live, hist = batch.take(~old), batch.take(old)
        else:
            live, hist = batch, None
        np.maximum.at(self._newest, live.tag, live.ts)
        return live, hist
