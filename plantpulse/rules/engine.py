"""The rules engine: samples in, alert transitions out. Pure code, no I/O, no clock.

The same engine runs in the live pipeline, in a backtest, in rule unit tests and inside a
faust agent; time only comes from sample timestamps and the watermark (SPEC §4 rules 1, 4).

* Tags are matched against rule patterns once per tag id, lazily, as the registry grows;
  each match creates one stream (rule, tag) and indexes the tags it reads.
* ``process`` drops samples older than their tag's last processed sample ("late", counted),
  hands the batch to every rule's stream set and then lets the new watermark fire what is
  due. A batch that holds a tag twice is sorted stably by time first. One that holds every
  tag at most once (the live shape) is not: streams of one tag need no order then, and
  rules over several tags sort lazily, once per batch (``Rows.by_time``). Whether the tags
  of a batch are distinct is remembered for the last tag column seen, as polled sources
  send the same tag list every cycle.
* ``snapshot``/``restore`` carry the complete state as plain JSON-able data, keyed by rule
  id and tag name so it survives a restart with a differently numbered registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from plantpulse.alerts import AlertEvent
from plantpulse.rules.arrays import F64, I64, NONE, B, fj, grow, jf
from plantpulse.rules.base import Rows, Seed, StreamSet
from plantpulse.rules.condition import ConditionStreams
from plantpulse.rules.model import Rule, is_glob
from plantpulse.rules.stale import StaleStreams
from plantpulse.samples import Quality, SampleBatch, TagRegistry

__all__ = ["Engine", "EngineStats"]

_BAD = np.uint8(Quality.BAD)  # a numpy scalar: comparing with the IntEnum is 6x slower

SNAPSHOT_VERSION = 1


@dataclass
class EngineStats:
    """Counters since start (restored with a snapshot); read-only view, rebuilt on access."""

    samples: int = 0
    bad_samples: int = 0
    late_dropped: int = 0
    streams: int = 0
    raised: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)


class Engine:
    def __init__(self, rules: Sequence[Rule], tags: TagRegistry) -> None:
        self.rules = list(rules)
        self.tags = tags
        self._sets: list[StreamSet] = [
            StaleStreams(r) if r.kind == "stale" else ConditionStreams(r) for r in self.rules
        ]
        self._exact: dict[str, list[int]] = {}
        self._globs: list[int] = []
        for i, r in enumerate(self.rules):
            if not is_glob(r.tag):
                self._exact.setdefault(r.tag, []).append(i)
            else:
                self._globs.append(i)
        self._matched = 0
        self._last_ts = np.zeros(0, dtype=np.int64)
        self._last_val = np.zeros(0, dtype=np.float64)
        self._last_bad = np.zeros(0, dtype=np.bool_)
        # the tag column of the last batch, and (that column as intp, no tag twice?)
        self._layout_tags = np.zeros(0, dtype=np.int32)
        self._layout: tuple[npt.NDArray[np.intp], bool] = (np.zeros(0, dtype=np.intp), True)
        # the last distinct batch (tag, ts, value, bad), written into _last_* only when needed:
        # the next batch with the same tag column overwrites every one of its tags anyway
        self._held: tuple[npt.NDArray[np.intp], I64, F64, B] | None = None
        self._scratch = np.zeros(0, dtype=np.intp)
        self._arange = np.zeros(0, dtype=np.intp)
        self.watermark: int | None = None
        self._given: int | None = None  # the watermark the current ``process`` call was given
        self._samples = 0
        self._bad = 0
        self._late = 0

    # --- tags -> streams --------------------------------------------------------------------
    def _sync(self) -> None:
        """Match tags registered since the last call (the registry only grows)."""
        if self._matched < len(self.tags):
            self._flush()  # new streams are seeded from the last samples
        while self._matched < len(self.tags):
            tid = self._matched
            self._matched += 1
            name = self.tags.name(tid)
            hits = self._exact.get(name, []) + [i for i in self._globs if self.rules[i].matches(name)]
            for i in hits:
                ids = [self.tags.id(n) for n in self.rules[i].input_names(name)]
                self._sets[i].add(name, ids, [self._seed(x) for x in ids])
        n = len(self.tags)
        self._last_ts = grow(self._last_ts, n, NONE)
        self._last_val = grow(self._last_val, n, np.nan)
        self._last_bad = grow(self._last_bad, n, False)
        for st in self._sets:
            st.ensure_tags(n)

    def _seed(self, tid: int) -> Seed | None:
        if tid >= len(self._last_ts) or self._last_ts[tid] == NONE:
            return None
        return Seed(int(self._last_ts[tid]), float(self._last_val[tid]), bool(self._last_bad[tid]))

    # --- evaluation ---------------------------------------------------------------------------
    def process(self, batch: SampleBatch, watermark: int | None = None) -> list[AlertEvent]:
        """Evaluate one batch (any order); events come back ordered by their time ``at``.

        Without ``watermark`` the watermark becomes the largest timestamp seen (backtests, rule
        tests: SPEC §4 rule 4). The live pipeline passes its own (per source, never past the
        arrival time, docs/rules.md): then the batch's timestamps do not move it."""
        if len(batch) == 0:
            return [] if watermark is None else self.advance(watermark)
        self._sync()
        self._given = watermark
        tag, distinct = self._tag_layout(batch.tag)
        if distinct:
            return self._process_distinct(batch, tag)
        self._flush()
        b = batch.sorted()
        ts, tag, value, quality = b.ts, b.tag.astype(np.intp), b.value, b.quality
        late = ts < self._last_ts[tag]
        nlate = int(np.count_nonzero(late))
        if nlate:
            keep = ~late
            ts, tag, value, quality = ts[keep], tag[keep], value[keep], quality[keep]
            self._late += nlate
        n = len(ts)
        if n == 0:
            return [] if watermark is None else self.advance(watermark)
        bad = quality == _BAD
        self._samples += n
        self._bad += int(np.count_nonzero(bad))
        lastrow = np.full(len(self._last_ts), -1, dtype=np.intp)
        np.maximum.at(lastrow, tag, np.arange(n))
        touched = np.flatnonzero(lastrow >= 0)
        rr = lastrow[touched]
        self._last_ts[touched], self._last_val[touched], self._last_bad[touched] = ts[rr], value[rr], bad[rr]
        self._raise_watermark(int(ts[-1]))
        return self._evaluate(Rows(ts, tag, value, bad, ordered=True, distinct=False))

    def _process_distinct(self, batch: SampleBatch, tag: npt.NDArray[np.intp]) -> list[AlertEvent]:
        """Every tag at most once: no sort, and the last sample of a tag is its only one."""
        ts, value, quality = batch.ts, batch.value, batch.quality
        held = self._held
        if held is not None and held[0] is tag:  # same tags as the held batch: row i is tag i's last
            late = ts < held[1]
        else:
            self._flush()
            late = ts < self._last_ts.take(tag)
        nlate = int(np.count_nonzero(late))
        if nlate:
            self._flush()
            keep = ~late
            ts, tag, value, quality = ts[keep], tag[keep], value[keep], quality[keep]
            self._late += nlate
            if len(ts) == 0:
                return [] if self._given is None else self.advance(self._given)
        bad = quality == _BAD
        self._samples += len(ts)
        self._bad += int(np.count_nonzero(bad))
        if nlate:
            self._last_ts[tag], self._last_val[tag], self._last_bad[tag] = ts, value, bad
        else:  # copies: the caller may reuse its buffers
            self._held = (tag, ts.copy(), value.copy(), bad)
        self._raise_watermark(int(ts.max()))
        return self._evaluate(Rows(ts, tag, value, bad, ordered=False, distinct=True))

    def _raise_watermark(self, top: int) -> None:
        """To the batch's newest timestamp, or to the watermark ``process`` was given."""
        w = top if self._given is None else self._given
        self.watermark = w if self.watermark is None else max(self.watermark, w)

    def _evaluate(self, rows: Rows) -> list[AlertEvent]:
        assert self.watermark is not None
        events: list[AlertEvent] = []
        for st in self._sets:
            events.extend(st.process(rows))
        for st in self._sets:
            events.extend(st.advance(self.watermark))
        if len(events) > 1:
            events.sort(key=_at)
        return events

    def _flush(self) -> None:
        """Write the held batch into the per-tag last sample arrays."""
        if self._held is not None:
            tag, ts, value, bad = self._held
            self._last_ts[tag], self._last_val[tag], self._last_bad[tag] = ts, value, bad
            self._held = None

    def _tag_layout(self, tag: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.intp], bool]:
        """The tag column as intp and whether no tag occurs twice (cached for a repeated column)."""
        prev = self._layout_tags
        if len(prev) == len(tag) and np.array_equal(prev, tag):
            return self._layout
        tp = tag.astype(np.intp)
        n = len(tp)
        if len(self._arange) < n:
            self._arange = np.arange(max(n, 2 * len(self._arange)), dtype=np.intp)
        if len(self._scratch) < len(self._last_ts):
            self._scratch = np.zeros(len(self._last_ts), dtype=np.intp)
        pos = self._arange[:n]
        # scatter then gather: a repeated tag leaves a mismatch whichever write wins
        self._scratch[tp] = pos
        distinct = bool(np.array_equal(self._scratch.take(tp), pos))
        self._layout_tags = tag.copy()
        self._layout = (tp, distinct)
        return self._layout

    def advance(self, watermark_ns: int) -> list[AlertEvent]:
        """Heartbeat or end of input: fire pending conditions whose time has come."""
        self._sync()
        w = int(watermark_ns)
        self.watermark = w if self.watermark is None else max(self.watermark, w)
        events: list[AlertEvent] = []
        for st in self._sets:
            events.extend(st.advance(self.watermark))
        events.sort(key=_at)
        return events

    @property
    def stats(self) -> EngineStats:
        return EngineStats(
            samples=self._samples,
            bad_samples=self._bad,
            late_dropped=self._late,
            streams=sum(len(st) for st in self._sets),
            raised={st.rule.id: st.raised for st in self._sets},
            cleared={st.rule.id: st.cleared for st in self._sets},
        )

    # --- state --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Complete state as plain JSON-serializable data (NaN written as null)."""
        self._flush()
        n = min(len(self._last_ts), len(self.tags))
        tags = {
            self.tags.name(i): [int(self._last_ts[i]), jf(float(self._last_val[i])), bool(self._last_bad[i])]
            for i in np.flatnonzero(self._last_ts[:n] != NONE).tolist()
        }
        return {
            "version": SNAPSHOT_VERSION,
            "watermark": self.watermark,
            "counters": {"samples": self._samples, "bad_samples": self._bad, "late_dropped": self._late},
            "tags": tags,
            "rules": {
                st.rule.id: {"streams": st.snapshot(), "raised": st.raised, "cleared": st.cleared}
                for st in self._sets
            },
        }

    def restore(self, state: dict[str, Any]) -> Engine:
        """Continue from ``snapshot()`` output; returns self. Rules absent from the state start
        fresh, from the tags' held values (zero-order hold, as a stream made for a new tag);
        state of rules no longer configured is ignored."""
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported engine snapshot version {state.get('version')!r}")
        for name in state["tags"]:
            self.tags.id(name)
        for rs in state["rules"].values():
            for name in rs["streams"]:
                self.tags.id(name)
        self._flush()
        n = len(self.tags)
        self._last_ts = grow(self._last_ts, n, NONE)
        self._last_val = grow(self._last_val, n, np.nan)
        self._last_bad = grow(self._last_bad, n, False)
        for name, (t, v, b) in state["tags"].items():
            i = self.tags.id(name)
            self._last_ts[i], self._last_val[i], self._last_bad[i] = t, fj(v), b
        self._sync()  # streams are made now, seeded with those values; restored below if known
        for st in self._sets:
            rs = state["rules"].get(st.rule.id)
            if rs is not None:
                st.restore(rs["streams"])
                st.raised, st.cleared = rs["raised"], rs["cleared"]
        self.watermark = state["watermark"]
        c = state["counters"]
        self._samples, self._bad, self._late = c["samples"], c["bad_samples"], c["late_dropped"]
        return self


def _at(e: AlertEvent) -> int:
    return e.at
