"""Live KPI upkeep: samples in per micro-batch, results of closed windows out. Pure code.

    state = KpiState(plan, tags, start=t0)          # t0: the first instant measured
    results = state.process(batch, alerts=raises)   # closes every window the watermark passed
    results = state.advance(watermark)              # heartbeat, or the end of a finite input
    state = KpiState.load(plan, tags, state.dump()) # plain JSON-ready data, keyed by tag name

No I/O and no clock: time is the samples' timestamps and the watermark (the largest timestamp
seen, or one given), exactly like the rules engine, so the live pipeline, ``kpi report`` over
stored samples and a test over a CSV compute the same numbers. The state is mutable numpy
arrays updated in place; copying them per micro-batch would cost more than the update.

Semantics (docs/kpis.md):
* Zero-order hold: a tag keeps its value until its next sample. A bad sample (or NaN) makes it
  unknown until the next good one; uncertain counts as good, as in the rules engine. Samples
  older than their tag's last sample, or than a boundary already closed, are late: counted,
  dropped. Samples before ``start`` only seed the held values and counter baselines.
* Only changes cost work: a sample equal to the held value changes no sum. At a change, the
  held value's time since the last change is added to the sums of the current segment (the
  stretch between two calendar boundaries); at each boundary the held values are accounted
  up to it and the segment is folded into every open window.
* Counters: an increment is the difference between consecutive good values, attributed to
  the segment of the sample showing it. A decrease is a reset (the new value counts from 0)
  unless the KPI declares a modulus: then it is a wrap (``new + modulus - old``).
* Coverage of a stream is the time all its inputs were known and good, kept exactly: only
  quality flips (known <-> unknown) change it, and those are rare.

Equality with any cut of the input is by construction: per tag, float sums are added in time
order, one change at a time (``np.add.at`` where a batch holds a tag twice), and segments are
folded at the same boundaries whatever the batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from plantpulse.kpi.acc import Acc
from plantpulse.kpi.calendar import Window
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.results import AlertMark, Closer, KpiResult
from plantpulse.kpi.streams import BAND, COUNTER, HIST, MEAN, MINMAX, STATE, Streams
from plantpulse.rules.arrays import F64, I64, INTP, NONE, B, fj, grow, jf
from plantpulse.samples import Quality, SampleBatch, TagRegistry

__all__ = ["KpiState", "KpiStats"]

_BAD = np.uint8(Quality.BAD)
VERSION = 1


@dataclass
class KpiStats:
    samples: int = 0
    bad_samples: int = 0
    late_dropped: int = 0
    late_alerts: int = 0


@dataclass
class _Open:
    window: Window
    acc: Acc
    planned: dict[int, Acc] = field(default_factory=dict)


def _ends(tg: INTP) -> B:
    """Last row of each run of equal tags."""
    out = np.ones(len(tg), dtype=np.bool_)
    out[:-1] = tg[1:] != tg[:-1]
    return out


def _starts(tg: INTP) -> B:
    out = np.ones(len(tg), dtype=np.bool_)
    out[1:] = tg[1:] != tg[:-1]
    return out


class KpiState:
    def __init__(self, plan: KpiPlan, tags: TagRegistry, *, start: int) -> None:
        self.plan = plan
        self.tags = tags
        self.streams = Streams(plan.kpis, tags)
        self.closer = Closer(plan, self.streams)
        self.start = int(start)
        self.watermark: int | None = None
        self.seg_start = self.start
        self.stats = KpiStats()
        self.held: F64 = np.zeros(0, dtype=np.float64)
        self.since: I64 = np.zeros(0, dtype=np.int64)
        self.last_ts: I64 = np.zeros(0, dtype=np.int64)
        self.cnt: F64 = np.zeros(0, dtype=np.float64)
        self.nbad: I64 = np.zeros(0, dtype=np.int64)
        self.gsince: I64 = np.zeros(0, dtype=np.int64)
        self.seg = Acc()
        self.open: dict[tuple[str, str, int], _Open] = {}
        self.alerts: list[AlertMark] = []
        self._floor = self.start  # no sample at or after this can be late
        self._layout: tuple[npt.NDArray[np.int32], int, INTP | None, INTP, bool] | None = None
        self._held_rows: tuple[INTP, I64] | None = None
        self._sync()
        self._open_at(self.start)
        self._next = plan.next_boundary(self.start)

    # -- growth ----------------------------------------------------------------------------------
    def _accs(self) -> Iterable[Acc]:
        yield self.seg
        for o in self.open.values():
            yield o.acc
            yield from o.planned.values()

    def _sync(self) -> None:
        st = self.streams
        if st._seen == len(self.tags) and len(self.held) >= len(self.tags):
            return
        self._flush()
        new_groups = st.sync()
        n = len(st)
        self.held = grow(self.held, n, np.nan)
        self.since = grow(self.since, n, NONE)
        self.since[self.since == NONE] = self.seg_start
        self.last_ts = grow(self.last_ts, n, NONE)
        self.cnt = grow(self.cnt, n, np.nan)
        ng = len(st.groups)
        self.nbad = grow(self.nbad, ng, 0)
        self.gsince = grow(self.gsince, ng, self.seg_start)
        for g in new_groups:
            ids = np.array(st.groups[g], dtype=np.intp)
            self.nbad[g] = int(np.count_nonzero(np.isnan(self.held[ids])))
            self.gsince[g] = self.seg_start
        for acc in self._accs():
            acc.grow(n, st.nbins, ng)

    def _new_acc(self) -> Acc:
        st = self.streams
        return Acc(len(self.held), st.nbins, len(self.nbad))

    def _open_at(self, t: int) -> None:
        for w in self.plan.windows_over(t, t + 1):
            if w.key not in self.open:
                planned = {g: self._new_acc() for g in range(len(self.plan.groups))}
                self.open[w.key] = _Open(w, self._new_acc(), planned)

    # -- the batch -------------------------------------------------------------------------------
    def process(
        self, batch: SampleBatch, *, alerts: Iterable[AlertMark] = (), watermark: int | None = None
    ) -> list[KpiResult]:
        """Take one micro-batch (any order) and the alert raises it produced; return the results
        of every window that closed, in order of their end. ``watermark``, when given, must be
        at least the batch's largest timestamp (the engine's watermark after the same batch);
        by default it is that timestamp."""
        self._sync()
        self._take(alerts)
        wm = watermark
        out: list[KpiResult] = []
        if len(batch):
            if wm is None:
                wm = int(batch.ts.max())
            out = self._ingest(batch, wm)
        if wm is not None:
            out += self.advance(wm)
        return out

    def _take(self, alerts: Iterable[AlertMark]) -> None:
        """Keep raises until their windows close; one older than every open window is late."""
        first = min((o.window.start for o in self.open.values()), default=self.seg_start)
        for m in alerts:
            if m.raised_at < first:
                self.stats.late_alerts += 1
            else:
                self.alerts.append(m)

    def advance(self, watermark: int) -> list[KpiResult]:
        """Close every window that ends at or before ``watermark``."""
        self._sync()
        w = int(watermark)
        self.watermark = w if self.watermark is None else max(self.watermark, w)
        out: list[KpiResult] = []
        while self._next <= self.watermark:
            out += self._close(self._next)
        self._floor = max(self._floor, self.watermark)
        return out

    def _layout_of(self, tag: npt.NDArray[np.int32]) -> tuple[INTP | None, INTP, bool]:
        """(rows of tracked tags or None for all, their tag ids, no tag twice), cached per column."""
        lay = self._layout
        version = self.streams.version
        if lay is not None and lay[1] == version and len(lay[0]) == len(tag) and np.array_equal(lay[0], tag):
            return lay[2], lay[3], lay[4]
        tp = tag.astype(np.intp)
        tracked = self.streams.tracked[tp]
        if bool(tracked.all()):
            pos: INTP | None = None
            tm = tp
        else:
            pos = np.flatnonzero(tracked)
            tm = tp[pos]
        distinct = len(np.unique(tm)) == len(tm)
        self._layout = (tag.copy(), version, pos, tm, distinct)
        return pos, tm, distinct

    def _ingest(self, batch: SampleBatch, wm: int) -> list[KpiResult]:
        pos, tm, distinct = self._layout_of(batch.tag)
        if len(tm) == 0:
            return []
        if pos is None:  # the fast path keeps ts: a copy, as the caller may reuse its buffers
            ts, v = batch.ts.copy(), batch.value
        else:
            ts, v = batch.ts[pos], batch.value[pos]
        self.stats.samples += len(ts)
        if int(batch.quality.max()) >= _BAD:
            bad = (batch.quality if pos is None else batch.quality[pos]) == _BAD
            nbad = int(np.count_nonzero(bad))
            if nbad:
                self.stats.bad_samples += nbad
                v = np.where(bad, np.nan, v)
        lo = int(ts.min())
        if distinct and lo >= self._floor and wm < self._next:
            self._fast(tm, ts, v)
            return []
        return self._slow(tm, ts, v)

    def _fast(self, tm: INTP, ts: I64, v: F64) -> None:
        """Every tag at most once, nothing late, no boundary crossed: only the changed rows."""
        held = self._held_rows
        if held is not None and held[0] is not tm:
            self._flush()
        h = self.held[tm]
        ch = np.flatnonzero(h != v)  # NaN != NaN: bad rows count as changes (they cost little)
        if len(ch):
            tc = tm[ch]
            self._changes(tc, ts[ch], v[ch], h[ch], self.since[tc], distinct=True)
        self._held_rows = (tm, ts)

    def _flush(self) -> None:
        """Write the last fast batch's times into ``last_ts`` (only the slow path reads it)."""
        if self._held_rows is not None:
            tm, ts = self._held_rows
            self.last_ts[tm] = ts
            self._held_rows = None

    def _slow(self, tm: INTP, ts: I64, v: F64) -> list[KpiResult]:
        self._flush()
        late = ts < self.last_ts[tm]
        nlate = int(np.count_nonzero(late))
        if nlate:
            keep = ~late
            tm, ts, v = tm[keep], ts[keep], v[keep]
            self.stats.late_dropped += nlate
        early = ts < self.start
        if early.any():
            self._seed(tm[early], ts[early], v[early])
            keep = ~early
            tm, ts, v = tm[keep], ts[keep], v[keep]
        out: list[KpiResult] = []
        if len(ts) == 0:
            return out
        o = np.argsort(ts, kind="stable")
        tm, ts, v = tm[o], ts[o], v[o]
        i, n = 0, len(ts)
        while i < n:
            j = n if int(ts[-1]) < self._next else int(np.searchsorted(ts, self._next, side="left"))
            if j > i:
                self._apply(tm[i:j], ts[i:j], v[i:j])
            i = j
            if i < n:
                out += self._close(self._next)
        return out

    def _seed(self, tm: INTP, ts: I64, v: F64) -> None:
        """Samples before ``start``: the value held at ``start`` and the counter baselines."""
        o = np.lexsort((ts, tm))
        tm, ts, v = tm[o], ts[o], v[o]
        e = _ends(tm)
        last, last_v = tm[e], v[e]
        self.last_ts[last] = ts[e]
        was_bad = np.isnan(self.held[last])
        self.held[last] = last_v
        good = ~np.isnan(v) & ((self.streams.feat[tm] & COUNTER) != 0)
        if good.any():
            g_tm, g_v = tm[good], v[good]
            ge = _ends(g_tm)
            self.cnt[g_tm[ge]] = g_v[ge]
        flip = was_bad != np.isnan(last_v)
        if flip.any():
            f = last[flip]
            self._flips(f, np.full(len(f), self.seg_start, dtype=np.int64), np.isnan(self.held[f]))

    def _apply(self, tm: INTP, ts: I64, v: F64) -> None:
        """Rows of one segment, time-ordered: find the changes per tag, then apply them."""
        o = np.argsort(tm, kind="stable")
        tg, t, val = tm[o], ts[o], v[o]
        st = _starts(tg)
        prev = np.empty_like(val)
        prev[1:] = val[:-1]
        prev[st] = self.held[tg[st]]
        e = _ends(tg)
        self.last_ts[tg[e]] = t[e]
        c = np.flatnonzero(prev != val)
        if len(c) == 0:
            return
        ctg, ct, cv = tg[c], t[c], val[c]
        cst = _starts(ctg)
        h = np.empty_like(cv)
        h[1:] = cv[:-1]
        h[cst] = self.held[ctg[cst]]
        s = np.empty_like(ct)
        s[1:] = ct[:-1]
        s[cst] = self.since[ctg[cst]]
        self._changes(ctg, ct, cv, h, s, distinct=bool(cst.all()))

    # -- the sums --------------------------------------------------------------------------------
    def _changes(self, tg: INTP, t: I64, v: F64, h: F64, s: I64, *, distinct: bool) -> None:
        """Rows where a tag's value or quality changes, grouped by tag and time-ordered in each
        group: ``h`` was held since ``s`` until ``t``; from ``t`` on the tag holds ``v``."""
        hn, vn = np.isnan(h), np.isnan(v)
        feat = self.streams.feat[tg]
        bits = int(np.bitwise_or.reduce(feat))
        self._hold(tg, h, t - s, hn=hn, feat=feat, bits=bits, distinct=distinct)
        if bits & COUNTER:
            ci = np.flatnonzero(((feat & COUNTER) != 0) & ~vn)
            if len(ci):
                self._count(tg[ci], v[ci], distinct=distinct)
        if distinct:
            self.held[tg] = v
            self.since[tg] = t
        else:
            e = _ends(tg)
            self.held[tg[e]] = v[e]
            self.since[tg[e]] = t[e]
        flip = hn != vn
        if flip.any():
            f = np.flatnonzero(flip)
            self._flips(tg[f], t[f], vn[f])

    def _hold(
        self, tg: INTP, h: F64, dt: I64, *, hn: B, feat: npt.NDArray[np.uint8], bits: int, distinct: bool
    ) -> None:
        """Add good value ``h`` held for ``dt`` ns to the segment's sums of tags ``tg``
        (``hn``: h is NaN; ``feat``: the tags' feature bits, ``bits`` their union)."""
        if not bits & (MEAN | MINMAX | STATE | BAND | HIST):
            return  # only counters changed: they sum increments, not held time
        ok = ~hn & (dt > 0)
        full = bool(ok.all())
        if not full and not ok.any():
            return
        f = self.seg.f
        if bits & MEAN:  # the integral of every changed tag, so sums never depend on the batch
            if full:
                area = h * dt
            else:  # masked rather than selected: adding 0.0 changes no sum
                area = np.zeros(len(h))
                np.multiply(h, dt, out=area, where=ok)
            if distinct:
                f["int"][tg] += area
            else:
                np.add.at(f["int"], tg, area)
        if bits & MINMAX:
            lo, hi = (h, h) if full else (np.where(ok, h, np.inf), np.where(ok, h, -np.inf))
            if distinct:
                f["min"][tg] = np.minimum(f["min"][tg], lo)
                f["max"][tg] = np.maximum(f["max"][tg], hi)
            else:
                np.minimum.at(f["min"], tg, lo)
                np.maximum.at(f["max"], tg, hi)
        if not bits & (STATE | BAND | HIST):
            return
        if not full:
            i = np.flatnonzero(ok)
            tg, h, dt, feat = tg[i], h[i], dt[i], feat[i]
            bits = int(np.bitwise_or.reduce(feat))
        st = self.streams
        if bits & STATE:
            rs = st.runset[tg]
            for r in np.unique(rs[rs >= 0]).tolist():
                m = (rs == r) & np.isin(h, st.runsets[r])
                np.add.at(f["run"], tg[m], dt[m])
        if bits & BAND:
            lo, hi = st.band_lo[tg], st.band_hi[tg]
            with np.errstate(invalid="ignore"):
                m = (h < lo) | (h > hi)
            np.add.at(f["out"], tg[m], dt[m])
        if bits & HIST:
            m = (feat & HIST) != 0
            tt, hh = tg[m], h[m]
            n = st.hist_n[tt]
            b = np.clip(np.floor((hh - st.hist_lo[tt]) / st.hist_w[tt]), 0, n - 1).astype(np.int64)
            np.add.at(self.seg.hist, st.hist_off[tt] + b, dt[m])

    def _count(self, tg: INTP, v: F64, *, distinct: bool) -> None:
        """Good counter values, grouped by tag, time-ordered: increments, resets, wraps."""
        prev = self.cnt[tg]
        if not distinct:
            st = _starts(tg)
            prev[~st] = v[:-1][~st[1:]]
        inc = v - prev
        known = ~np.isnan(prev)
        neg = known & (inc < 0)
        f = self.seg.f
        if neg.any():
            mod = self.streams.modulus[tg]
            inc = np.where(neg & ~np.isnan(mod), inc + mod, np.where(neg, v, inc))
            np.add.at(f["resets"], tg[neg], 1)
        if distinct:
            self.cnt[tg] = v
        else:
            e = _ends(tg)
            self.cnt[tg[e]] = v[e]
        if not known.all():
            k = np.flatnonzero(known)
            tg, inc = tg[k], inc[k]
        if distinct:
            f["inc"][tg] += inc
        else:
            np.add.at(f["inc"], tg, inc)

    def _flips(self, tags: INTP, ts: I64, bad: B) -> None:
        """Known <-> unknown changes: the exact covered time of every stream reading the tag."""
        o = np.argsort(ts, kind="stable")
        groups = self.streams.tag_groups
        cov, nbad, gsince = self.seg.cov, self.nbad, self.gsince
        for tid, t, now_bad in zip(tags[o].tolist(), ts[o].tolist(), bad[o].tolist(), strict=True):
            for g in groups.get(tid, ()):
                at = max(t, int(gsince[g]))
                if nbad[g] == 0:
                    cov[g] += at - gsince[g]
                gsince[g] = at
                nbad[g] += 1 if now_bad else -1

    # -- boundaries ------------------------------------------------------------------------------
    def _close(self, b: int) -> list[KpiResult]:
        """Account every held value up to boundary ``b``, fold the segment into the open windows,
        close those that end at ``b`` and open those that start there."""
        self._flush()
        n = len(self.held)
        known = np.flatnonzero(~np.isnan(self.held))
        if len(known):
            h = self.held[known]
            feat = self.streams.feat[known]
            hn = np.zeros(len(known), dtype=np.bool_)
            bits = int(np.bitwise_or.reduce(feat))
            self._hold(known, h, b - self.since[known], hn=hn, feat=feat, bits=bits, distinct=True)
        self.since[:n] = b
        np.maximum(self.last_ts, b, out=self.last_ts)
        full = self.nbad == 0
        self.seg.cov[full] += b - self.gsince[full]
        self.gsince[:] = b
        a = self.seg_start
        for o in self.open.values():
            o.acc.fold(self.seg)
            for g, pacc in o.planned.items():
                if self.plan.planned(g, a):
                    pacc.fold(self.seg)
        self.seg.reset()
        self.seg_start = b
        self._floor = max(self._floor, b)
        out: list[KpiResult] = []
        closing = sorted((o for o in self.open.values() if o.window.end <= b), key=lambda o: o.window)
        for o in closing:
            del self.open[o.window.key]
            w = o.window
            marks = [m for m in self.alerts if w.start <= m.raised_at < w.end]
            out += self.closer.results(w, o.acc, o.planned, marks)
        self._open_at(b)
        self._next = self.plan.next_boundary(b)
        first = min((o.window.start for o in self.open.values()), default=b)
        self.alerts = [m for m in self.alerts if m.raised_at >= first]
        return out

    # -- state -----------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """The complete state as plain JSON-ready data (NaN as null), keyed by tag name."""
        self._flush()
        st = self.streams
        n = len(self.tags)
        names = [self.tags.name(i) for i in range(n)]
        ids = np.arange(n, dtype=np.intp)
        bins = [(int(st.hist_off[t]), int(st.hist_n[t])) for t in st.hist_tags]
        ng = len(st.groups)
        gs = {"nbad": self.nbad[:ng].tolist(), "gsince": self.gsince[:ng].tolist()}

        def acc(a: Acc) -> dict[str, Any]:
            return a.dump(ids, bins, ng)

        return {
            "version": VERSION,
            "start": self.start,
            "watermark": self.watermark,
            "segment": self.seg_start,
            "floor": self._floor,
            "tags": names,
            "held": [jf(x) for x in self.held[:n].tolist()],
            "since": self.since[:n].tolist(),
            "last_ts": self.last_ts[:n].tolist(),
            "cnt": [jf(x) for x in self.cnt[:n].tolist()],
            "hist_tags": [names[t] for t in st.hist_tags],
            "groups": [[names[t] for t in g] for g in st.groups],
            **gs,
            "sums": acc(self.seg),
            "windows": [
                {
                    "window": o.window.to_json(),
                    "sums": acc(o.acc),
                    "planned": [acc(p) for p in o.planned.values()],
                }
                for o in self.open.values()
            ],
            "alerts": [[m.raised_at, m.rule, m.asset, m.severity] for m in self.alerts],
            "stats": vars(self.stats).copy(),
        }

    @classmethod
    def load(cls, plan: KpiPlan, tags: TagRegistry, data: dict[str, Any]) -> KpiState:
        """Continue from ``dump()`` output (the registry may number tags differently)."""
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported KPI state version {data.get('version')!r}")
        for name in data["tags"]:
            tags.id(name)
        self = cls(plan, tags, start=data["start"])
        self.seg_start = data["segment"]
        self._sync()
        st = self.streams
        ids = np.array([tags.id(x) for x in data["tags"]], dtype=np.intp)
        self.held[ids] = [fj(x) for x in data["held"]]
        self.since[ids] = data["since"]
        self.last_ts[ids] = data["last_ts"]
        self.cnt[ids] = [fj(x) for x in data["cnt"]]
        bins = [(int(st.hist_off[tags.id(x)]), int(st.hist_n[tags.id(x)])) for x in data["hist_tags"]]
        index = {g: i for i, g in enumerate(st.groups)}
        groups = [index[tuple(sorted({tags.id(x) for x in names}))] for names in data["groups"]]
        if groups:
            gi = np.array(groups, dtype=np.intp)
            self.nbad[gi] = data["nbad"]
            self.gsince[gi] = data["gsince"]
        self.seg.load(data["sums"], ids, bins, groups)
        self.open = {}
        for wd in data["windows"]:
            w = Window.from_json(wd["window"])
            o = _Open(w, self._new_acc(), {g: self._new_acc() for g in range(len(plan.groups))})
            o.acc.load(wd["sums"], ids, bins, groups)
            for g, pd in enumerate(wd["planned"]):
                o.planned[g].load(pd, ids, bins, groups)
            self.open[w.key] = o
        self.watermark = data["watermark"]
        self._floor = data["floor"]
        self._next = plan.next_boundary(self.seg_start)
        self.alerts = [AlertMark(*m) for m in data["alerts"]]
        self.stats = KpiStats(**data["stats"])
        return self


def raises(events: Sequence[Any]) -> list[AlertMark]:
    """Alert raises as KPIs count them, from engine events (``kind == "raised"``) or stored alerts."""
    return [
        AlertMark(e.raised_at, e.rule, e.asset, e.severity)
        for e in events
        if getattr(e, "kind", "raised") == "raised"
    ]
