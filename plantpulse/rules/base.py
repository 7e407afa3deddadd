"""What every per-rule stream set shares: the batch it is given and the stream table.

A *stream* is one (rule, matched tag) pair: one alert lifecycle (SPEC §4 rule 7, stated
point by point in lifecycle.py). Stream sets keep their state in parallel numpy arrays
indexed by stream number, and a lookup from tag id to the (stream, input slot) pairs that
read the tag, so a sample only reaches the streams that use it. What an alert carries from
its raise to its clear (time, value, message) is kept here, for every kind alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.rules.arrays import F64, I8, I64, INTP, NONE, B, fj, grow, jf, jt, ragged_index, tj
from plantpulse.rules.model import Rule


class Rows:
    """A batch as the engine hands it to rules, late samples dropped.

    ``ordered``: rows are time-sorted (stable). ``distinct``: no tag occurs twice. The live
    shape (one sample per tag per batch) arrives distinct but not ordered; rules whose
    streams read one tag need no order then, and the sort that the others need is done at
    most once per batch, lazily, by ``by_time``.
    """

    __slots__ = ("_by_time", "bad", "bad3", "distinct", "ordered", "tag", "ts", "value")

    def __init__(self, ts: I64, tag: INTP, value: F64, bad: B, *, ordered: bool, distinct: bool) -> None:
        self.ts, self.tag, self.value, self.bad = ts, tag, value, bad
        self.ordered, self.distinct = ordered, distinct
        self.bad3: I8 | None = None  # 3 where bad, else 0: the UNKNOWN code of the fast path
        self._by_time: Rows | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def by_time(self) -> Rows:
        """The same rows stably sorted by time (self when already ordered)."""
        if self.ordered:
            return self
        if self._by_time is None:
            o = np.argsort(self.ts, kind="stable")
            self._by_time = Rows(
                self.ts[o], self.tag[o], self.value[o], self.bad[o], ordered=True, distinct=self.distinct
            )
        return self._by_time


@dataclass(frozen=True, slots=True)
class Seed:
    """What the engine knows of a tag before a stream reading it existed (zero-order hold)."""

    ts: int
    value: float
    bad: bool


_ALERT = {"raised_at": NONE, "raised_val": np.nan}


class StreamSet(ABC):
    """All streams of one rule."""

    def __init__(self, rule: Rule, slots: int) -> None:
        self.rule = rule
        self.slots = slots
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self._pairs: list[tuple[int, int, int]] = []  # (input tag id, stream, slot)
        self._first = np.zeros(0, dtype=np.intp)
        self._count = np.zeros(0, dtype=np.intp)
        self._pair_stream = np.zeros(0, dtype=np.intp)
        self._pair_slot = np.zeros(0, dtype=np.intp)
        self._dirty = False
        self._ntags = 0
        self._scratch = np.zeros(0, dtype=np.intp)
        self.raised = 0
        self.cleared = 0
        self.raised_at = np.zeros(0, dtype=np.int64)
        self.raised_val = np.zeros(0, dtype=np.float64)
        self.messages: dict[int, str] = {}  # the message of every active alert, by stream

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: str, input_ids: list[int], seeds: list[Seed | None]) -> int:
        """Create the stream of matched tag ``name``; ``input_ids[0]`` is that tag's id."""
        s = len(self.names)
        self.names.append(name)
        self.index[name] = s
        for slot, tid in enumerate(input_ids):
            self._pairs.append((tid, s, slot))
        self._dirty = True
        grow_all(self, s + 1, _ALERT)
        self._grow(s + 1)
        self._seed(s, seeds)
        return s

    def ensure_tags(self, ntags: int) -> None:
        if ntags > self._ntags:
            self._ntags = ntags
            self._dirty = True

    def _lookup(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        n = max(self._ntags, 1 + max((p[0] for p in self._pairs), default=0))
        pairs = sorted(self._pairs)
        tags = np.array([p[0] for p in pairs], dtype=np.intp)
        self._pair_stream = np.array([p[1] for p in pairs], dtype=np.intp)
        self._pair_slot = np.array([p[2] for p in pairs], dtype=np.intp)
        self._count = np.bincount(tags, minlength=n).astype(np.intp)
        self._first = (np.cumsum(self._count) - self._count).astype(np.intp)

    def entries(self, rows: Rows) -> tuple[INTP, INTP, INTP]:
        """(row, stream, slot) for every sample that reaches a stream, grouped by stream
        (groups are contiguous, not necessarily ascending), time order kept in each group."""
        self._lookup()
        count = self._count[rows.tag]
        sel = np.flatnonzero(count)
        if len(sel) == 0:
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty, empty
        c = count[sel]
        first = self._first[rows.tag[sel]]
        if int(c.max()) == 1:
            row, pair = sel, first
        else:
            row = np.repeat(sel, c)
            pair = ragged_index(first, c)
        stream = self._pair_stream[pair]
        if self._distinct(stream):  # the common live case: one sample per stream per batch
            return row, stream, self._pair_slot[pair]
        order = np.argsort(stream, kind="stable")
        return row[order], stream[order], self._pair_slot[pair][order]

    def _distinct(self, stream: INTP) -> bool:
        """No stream twice? (Scatter then gather: any duplicate leaves a mismatch, whichever
        write wins.) Cheaper than the sort it saves."""
        if len(self._scratch) < len(self.names):
            self._scratch = np.zeros(len(self.names) * 2, dtype=np.intp)
        pos = np.arange(len(stream), dtype=np.intp)
        self._scratch[stream] = pos
        return bool(np.array_equal(self._scratch[stream], pos))

    def _raise(self, s: int, at: int, value: float, aux: float | None = None) -> AlertEvent:
        """Stream ``s`` raises at ``at``; its message is rendered now and kept for the clear."""
        msg = self.rule.render(self.names[s], value, aux)
        self.raised_at[s], self.raised_val[s] = at, value
        self.messages[s] = msg
        self.raised += 1
        return self._event("raised", s, raised_at=at, at=at, value=value, message=msg)

    def _clear(self, s: int, at: int) -> AlertEvent:
        """Stream ``s`` clears at ``at``: the event repeats its raise's time, value and message."""
        self.cleared += 1
        msg = self.messages.pop(s, "")
        raised_at, value = int(self.raised_at[s]), float(self.raised_val[s])
        return self._event("cleared", s, raised_at=raised_at, at=at, value=value, message=msg)

    def _event(self, kind: str, s: int, *, raised_at: int, at: int, value: float, message: str) -> AlertEvent:
        r = self.rule
        return AlertEvent(
            kind,  # type: ignore[arg-type]
            r.id, self.names[s], r.severity, raised_at, at, value, message, r.notify, r.for_ns,
        )  # fmt: skip

    def _alert_state(self, s: int) -> dict[str, Any]:
        return {
            "raised_at": jt(int(self.raised_at[s])),
            "raised_val": jf(float(self.raised_val[s])),
            "message": self.messages.get(s),
        }

    def _restore_alert(self, s: int, st: dict[str, Any]) -> None:
        self.raised_at[s], self.raised_val[s] = tj(st["raised_at"]), fj(st["raised_val"])
        if st["message"] is not None:
            self.messages[s] = st["message"]

    @abstractmethod
    def _grow(self, n: int) -> None: ...

    @abstractmethod
    def _seed(self, s: int, seeds: list[Seed | None]) -> None: ...

    @abstractmethod
    def process(self, rows: Rows) -> list[AlertEvent]: ...

    @abstractmethod
    def advance(self, watermark: int) -> list[AlertEvent]: ...

    @abstractmethod
    def snapshot(self) -> dict[str, Any]: ...

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None: ...


def grow_all(obj: Any, n: int, spec: dict[str, Any]) -> None:
    """Grow every state array named in ``spec`` (name -> fill value) to ``n`` streams."""
    for name, fill in spec.items():
        setattr(obj, name, grow(getattr(obj, name), n, fill))
