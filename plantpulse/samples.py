"""Samples and the columnar batches the engine and stores consume.

Time is an int64 count of nanoseconds since the Unix epoch (UTC) everywhere inside
plantpulse; conversion to datetimes happens only at the edges (files, store, messages).
Tags are interned to small integer ids by a ``TagRegistry`` so that batches are plain
numpy arrays and rules can be indexed by tag id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Quality(IntEnum):
    """Sample quality; the integer codes are what batches and stores carry."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @classmethod
    def parse(cls, text: str) -> Quality:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"quality must be good, uncertain or bad, not {text!r}") from None


def asset_of(tag: str) -> str:
    """The asset of ``line1/weld01/current`` is ``line1/weld01``."""
    return tag.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading. A NaN value is always bad quality (see ``__post_init__``)."""

    ts: int  # ns since epoch, UTC
    tag: str
    value: float
    quality: Quality = Quality.GOOD

    def __post_init__(self) -> None:
        if math.isnan(self.value) and self.quality != Quality.BAD:
            object.__setattr__(self, "quality", Quality.BAD)


class TagRegistry:
    """Interns tag names to dense int32 ids (stable for the life of the process)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        for name in names:
            self.id(name)

    def id(self, name: str) -> int:
        tid = self._ids.get(name)
        if tid is None:
            tid = len(self._names)
            self._ids[name] = tid
            self._names.append(name)
        return tid

    def ids(self, names: Sequence[str]) -> npt.NDArray[np.int32]:
        return np.fromiter((self.id(n) for n in names), dtype=np.int32, count=len(names))

    def get(self, name: str) -> int | None:
        return self._ids.get(name)

    def name(self, tid: int) -> str:
        return self._names[tid]

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids


I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(slots=True)
class SampleBatch:
    """Columnar samples: parallel arrays of equal length, in arrival order.

    ``quality`` is already BAD wherever ``value`` is NaN (enforced by ``make``).
    """

    ts: I64
    tag: I32
    value: F64
    quality: U8
    tags: TagRegistry = field(repr=False)

    @classmethod
    def make(
        cls,
        tags: TagRegistry,
        ts: npt.ArrayLike,
        tag: npt.ArrayLike,
        value: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
    ) -> SampleBatch:
        ts_a = np.asarray(ts, dtype=np.int64)
        tag_a = np.asarray(tag, dtype=np.int32)
        val_a = np.asarray(value, dtype=np.float64)
        if quality is None:
            q_a = np.zeros(len(ts_a), dtype=np.uint8)
        else:
            q_a = np.array(quality, dtype=np.uint8, copy=True)
        if not (len(ts_a) == len(tag_a) == len(val_a) == len(q_a)):
            raise ValueError("batch columns differ in length")
        q_a[np.isnan(val_a)] = Quality.BAD
        return cls(ts_a, tag_a, val_a, q_a, tags)

    @classmethod
    def empty(cls, tags: TagRegistry) -> SampleBatch:
        return cls.make(tags, [], [], [])

    @classmethod
    def from_samples(cls, tags: TagRegistry, samples: Sequence[Sample]) -> SampleBatch:
        return cls.make(
            tags,
            [s.ts for s in samples],
            [tags.id(s.tag) for s in samples],
            [s.value for s in samples],
            [int(s.quality) for s in samples],
        )

    @classmethod
    def concat(cls, tags: TagRegistry, batches: Sequence[SampleBatch]) -> SampleBatch:
        if not batches:
            return cls.empty(tags)
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.tag for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
            tags,
        )

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> SampleBatch:
        """Rows selected by an index array or boolean mask."""
        return SampleBatch(self.ts[index], self.tag[index], self.value[index], self.quality[index], self.tags)

    def sorted(self) -> SampleBatch:
        """Stable sort by timestamp (ties keep arrival order)."""
        if len(self.ts) < 2 or bool(np.all(self.ts[1:] >= self.ts[:-1])):
            return self
        return self.take(np.argsort(self.ts, kind="stable"))

    def samples(self) -> list[Sample]:
        """Row view, for tests and edges; never on a hot path."""
        return [
            Sample(int(t), self.tags.name(int(g)), float(v), Quality(int(q)))
            for t, g, v, q in zip(self.ts, self.tag, self.value, self.quality, strict=True)
        ]
