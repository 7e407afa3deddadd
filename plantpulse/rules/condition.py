"""Streams of value conditions (above, below, outside, deviation, rate, expr), vectorised.

Per batch, the evaluation points of all streams of a rule are laid out grouped by stream
and the condition is computed for all of them at once. Each point is FIRE, CLEAR, BAND
(inside the hysteresis band) or UNKNOWN (an input is bad or has no value yet). The alert
lifecycle (SPEC §4 rules 3, 5, 6, 7; lifecycle.py states it point by point and the tests
hold this module to it) then only depends on maximal runs of equal status:

* a FIRE run starting at ``t0`` *qualifies* when the point that ends it has ``ts >= t0 + for``;
* a CLEAR run starting at ``t1`` qualifies when the point that ends it has ``ts >= t1 + clear.for``;
* an inactive stream is raised by the first qualifying FIRE run (``raised_at = t0 + for``), an
  active stream is cleared by the first qualifying CLEAR run; every other run changes nothing
  (a FIRE run that is too short is a pending that reset, and so on).

So Python only loops over qualifying runs of streams that actually change state; everything
else is array arithmetic. The run still open at the end of a batch is the stream's pending
state (its start and the value to report), resolved later by more samples or by the
watermark in ``advance``. A pending run is carried into the next batch as a virtual point at
its start, so runs crossing batch boundaries need no special case.

The live shape (each tag at most once per batch, most streams steady) takes a fast path
when the rule reads one tag: the status code of every row is tested against a bit mask of
the codes that change its stream's mode (inactive or active, each idle or pending), kept in
an int8 array indexed by *tag id*. That is about ten whole-array operations and no sort,
no grouping; only the few hot rows are looked at further, with the
same transitions the run logic above produces for a single point. ``advance`` skips its scan
until the earliest pending deadline is reached.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.rules.arrays import F64, I64, INTP, NONE, B, fj, group_starts, grow, jf, jt, tj
from plantpulse.rules.base import Rows, Seed, StreamSet, grow_all
from plantpulse.rules.lifecycle import Status
from plantpulse.rules.model import Deviation, Rate, Rule, Stale

BAND, FIRE, CLEAR, UNKNOWN = (int(s) for s in Status)  # plain ints for numpy
INF = np.iinfo(np.int64).max

# Fast path: code = the Status, computed as fire + 2 * clear, 3 when bad;
# mode = active + 2 * pending. _TABLE[4 * mode + code]: 0 nothing changes, 1 a pending run
# starts, 2 a pending run goes on, 3 a pending run ends (lifecycle.step at a point before the
# run's deadline; tests/rules/test_lifecycle.py checks it). _HOTMASK[mode] has bit ``code`` set
# where _TABLE is not 0 (0 for a tag the rule does not read).
_TABLE = np.array([0, 1, 0, 0, 0, 0, 1, 0, 3, 2, 3, 3, 3, 3, 2, 3], dtype=np.int8)
_HOTMASK = np.array([0b0010, 0b0100, 0b1111, 0b1111], dtype=np.int8)

_STATE = {
    "active": False,
    "pend": NONE,
    "pend_val": np.nan,
    "pend_aux": np.nan,
    "last_eval": NONE,
    "prev_ts": NONE,
    "prev_val": np.nan,
    "prev_bad": False,
    "held": np.nan,
    "held_bad": False,
    "held_has": False,
}


class ConditionStreams(StreamSet):
    def __init__(self, rule: Rule) -> None:
        super().__init__(rule, 1 + len(rule.inputs))
        assert not isinstance(rule.condition, Stale)
        self.cond = rule.condition
        self.active = np.zeros(0, dtype=np.bool_)
        self.pend = np.zeros(0, dtype=np.int64)
        self.pend_val = np.zeros(0, dtype=np.float64)
        self.pend_aux = np.zeros(0, dtype=np.float64)
        self.last_eval = np.zeros(0, dtype=np.int64)
        self.prev_ts = np.zeros(0, dtype=np.int64)
        self.prev_val = np.zeros(0, dtype=np.float64)
        self.prev_bad = np.zeros(0, dtype=np.bool_)
        self.held = np.zeros((0, self.slots), dtype=np.float64)
        self.held_bad = np.zeros((0, self.slots), dtype=np.bool_)
        self.held_has = np.zeros((0, self.slots), dtype=np.bool_)
        self._per_ns = self.cond.per_ns if isinstance(self.cond, Rate) else 0
        self._setpoint_aux = isinstance(self.cond, Deviation) and self.slots > 1  # else the rate, or unused
        self._fast = self.slots == 1 and not isinstance(self.cond, Rate)
        self._exclusive = self.cond.problem() is None  # fire and clear never hold together
        self._mode = np.zeros(0, dtype=np.int8)  # by tag id, see _TABLE
        self._hotmask = np.zeros(0, dtype=np.int8)  # by tag id, _HOTMASK[mode]
        self._stream_of = np.zeros(0, dtype=np.intp)  # by tag id: the stream whose slot 0 it is
        self._tag_of = np.zeros(0, dtype=np.intp)  # by stream
        self._next_due = NONE  # no pending deadline before this (NONE: unknown, scan)

    def add(self, name: str, input_ids: list[int], seeds: list[Seed | None]) -> int:
        s = super().add(name, input_ids, seeds)
        tid = input_ids[0]
        self._tag_of = grow(self._tag_of, s + 1, -1)
        self._tag_of[s] = tid
        if self._fast:
            self.ensure_tags(tid + 1)
            self._mode[tid] = 0
            self._hotmask[tid] = _HOTMASK[0]
            self._stream_of[tid] = s
        return s

    def ensure_tags(self, ntags: int) -> None:
        super().ensure_tags(ntags)
        if self._fast and len(self._mode) < ntags:
            self._mode = grow(self._mode, ntags, 0)
            self._hotmask = grow(self._hotmask, ntags, 0)
            self._stream_of = grow(self._stream_of, ntags, -1)

    def _remode(self, s: INTP) -> None:
        """Recompute the fast-path mode of streams ``s`` from their state."""
        if self._fast and len(s):
            self._set_mode(self._tag_of[s], self.active[s], self.pend[s])

    def _set_mode(self, tags: INTP, active: B, pend: I64) -> None:
        mode = active.astype(np.int8) + 2 * (pend != NONE).astype(np.int8)
        self._mode[tags] = mode
        self._hotmask[tags] = _HOTMASK.take(mode)

    def _grow(self, n: int) -> None:
        grow_all(self, n, _STATE)

    def _seed(self, s: int, seeds: list[Seed | None]) -> None:
        for j, seed in enumerate(seeds):
            if seed is not None:
                self.held[s, j], self.held_bad[s, j], self.held_has[s, j] = seed.value, seed.bad, True
                if j == 0:
                    self.prev_ts[s], self.prev_val[s], self.prev_bad[s] = seed.ts, seed.value, seed.bad

    # --- one batch --------------------------------------------------------------------------
    def process(self, rows: Rows) -> list[AlertEvent]:
        if self._fast and rows.distinct:
            return self._process_fast(rows)
        rows = rows.by_time()
        row, s, k = self.entries(rows)
        n = len(row)
        if n == 0:
            return []
        t = rows.ts[row]
        v = rows.value[row]
        b = rows.bad[row]
        gst = group_starts(s)
        gs = s[gst]
        gend = np.append(gst[1:], n) - 1
        rate: F64 | None = None
        if self.slots == 1:
            cols = [v]
            known = ~b
            self.held[gs, 0], self.held_bad[gs, 0], self.held_has[gs, 0] = v[gend], b[gend], True
        else:
            t = np.maximum(t, self.last_eval[s])  # an input older than the stream's last point
            cols, known = self._fill(s, k, v, b, (gst, gs, gend))
            if n > 1:
                dup = (s[1:] == s[:-1]) & (row[1:] == row[:-1])
                if dup.any():  # one tag read by several slots: one evaluation point, not several
                    keep = ~np.append(dup, False)
                    t, s, v, known = t[keep], s[keep], v[keep], known[keep]
                    cols = [c[keep] for c in cols]
                    n = len(t)
                    gst = group_starts(s)
                    gend = np.append(gst[1:], n) - 1
        self.last_eval[gs] = t[gend]
        if self._per_ns:
            rate, known = self._rate(t, v, b, (gst, gs, gend))
        with np.errstate(invalid="ignore"):
            fire, clear = self.cond.judge(cols, rate)
        st = np.full(n, BAND, dtype=np.int8)
        st[clear] = CLEAR
        st[fire] = FIRE
        st[~known] = UNKNOWN
        val = cols[0]
        aux = rate if rate is not None else cols[1] if self._setpoint_aux else val
        return self._runs(t, s, st, (val, aux), (gst, gs))

    def _process_fast(self, rows: Rows) -> list[AlertEvent]:
        """One point per stream: whole-array status and table lookup, then the hot rows."""
        with np.errstate(invalid="ignore"):
            fire, clear = self.cond.judge([rows.value], None)
        if not self._exclusive:
            clear = clear & ~fire
        ci = clear.view(np.int8)
        code = np.add(fire.view(np.int8), ci)
        np.add(code, ci, out=code)
        if rows.bad3 is None:
            rows.bad3 = rows.bad.view(np.int8) * np.int8(3)
        np.bitwise_or(code, rows.bad3, out=code)
        m = self._hotmask.take(rows.tag)
        np.right_shift(m, code, out=m)
        np.bitwise_and(m, 1, out=m)
        hot = np.flatnonzero(m.view(np.bool_))  # 0/1 bytes; nonzero on bool is ~7x faster than on int8
        if len(hot) == 0:
            return []
        tg = rows.tag[hot]
        code = code[hot]
        cls = _TABLE.take(4 * self._mode.take(tg) + code)
        s = self._stream_of[tg]
        t = rows.ts[hot]
        v = rows.value[hot]
        act = self.active[s]
        pend = self.pend[s]
        dl = pend + self._hold(act)
        close = cls == 3
        done = close & (t >= dl)  # the pending run qualified: raise or clear at its deadline
        events: list[AlertEvent] = []
        if done.any():
            qi = np.flatnonzero(done)
            qi = qi[np.argsort(t[qi], kind="stable")]  # the order the sorted general path has
            for i in qi.tolist():
                sid = int(s[i])
                if act[i]:
                    events.append(self._clear(sid, int(dl[i])))
                else:
                    pv, pa = float(self.pend_val[sid]), float(self.pend_aux[sid])
                    events.append(self._raise(sid, int(dl[i]), pv, pa))
        act2 = act ^ done
        start = (cls == 1) | (close & (code == np.where(act2, CLEAR, FIRE)))
        pend2 = np.where(start, t, np.where(close, NONE, pend))
        setv = start | ((cls == 2) & (t < dl))  # the value to report: last point before the deadline
        self.active[s] = act2
        self.pend[s] = pend2
        sv, vv = s[setv], v[setv]
        self.pend_val[sv] = vv
        self.pend_aux[sv] = vv
        self._set_mode(tg, act2, pend2)
        if start.any():
            due = t[start] + self._hold(act2[start])
            self._next_due = min(self._next_due, int(due.min()))
        return events

    def _fill(self, s: Any, k: Any, v: F64, b: Any, groups: tuple[Any, Any, Any]) -> tuple[list[F64], Any]:
        """Zero-order hold of every input slot at every evaluation point of the stream."""
        gst, gs, gend = groups
        n = len(s)
        ar = np.arange(n)
        gid = np.repeat(np.arange(len(gst)), np.diff(np.append(gst, n)))
        first = gst[gid]
        known = np.ones(n, dtype=np.bool_)
        cols: list[F64] = []
        for j in range(self.slots):
            acc = np.maximum.accumulate(np.where(k == j, ar, -1))
            valid = acc >= first
            src = np.maximum(acc, 0)
            col = np.where(valid, v[src], self.held[s, j])
            cb = np.where(valid, b[src], self.held_bad[s, j])
            ch = valid | self.held_has[s, j]
            known &= ch & ~cb
            cols.append(col)
            self.held[gs, j], self.held_bad[gs, j], self.held_has[gs, j] = col[gend], cb[gend], ch[gend]
        return cols, known

    def _rate(self, t: Any, v: F64, b: Any, groups: tuple[Any, Any, Any]) -> tuple[F64, Any]:
        """Change per ``per`` between consecutive samples; unknown for the first sample, a
        zero time step, or when either sample is bad."""
        gst, gs, gend = groups
        pt = np.empty_like(t)
        pv = np.empty_like(v)
        pb = np.empty_like(b)
        pt[1:], pv[1:], pb[1:] = t[:-1], v[:-1], b[:-1]
        pt[gst], pv[gst], pb[gst] = self.prev_ts[gs], self.prev_val[gs], self.prev_bad[gs]
        self.prev_ts[gs], self.prev_val[gs], self.prev_bad[gs] = t[gend], v[gend], b[gend]
        ok = (pt != NONE) & (t > pt) & ~b & ~pb
        dt = np.where(ok, t - pt, 1).astype(np.float64)
        with np.errstate(invalid="ignore"):
            rate = np.where(ok, (v - pv) / dt * self._per_ns, np.nan)
        return rate, ok

    def _runs(
        self, t: Any, s: Any, st: Any, values: tuple[F64, F64], groups: tuple[Any, Any]
    ) -> list[AlertEvent]:
        val, aux = values
        gst, gs = groups
        pend = self.pend[gs]
        carry = pend != NONE
        if carry.any():  # pending runs continue as a virtual point at their start
            cs = gs[carry]
            pos = gst[carry] + np.arange(len(cs))  # where the virtual points land
            real = np.ones(len(t) + len(cs), dtype=np.bool_)
            real[pos] = False
            t = _merge(t, pend[carry], real, pos)
            s = _merge(s, cs, real, pos)
            st = _merge(st, np.where(self.active[cs], CLEAR, FIRE).astype(np.int8), real, pos)
            val = _merge(val, self.pend_val[cs], real, pos)
            aux = _merge(aux, self.pend_aux[cs], real, pos)
        n = len(t)
        brk = np.ones(n, dtype=np.bool_)
        brk[1:] = (st[1:] != st[:-1]) | (s[1:] != s[:-1])
        rs = np.flatnonzero(brk)
        re = np.append(rs[1:], n)
        rst = st[rs]
        rstream = s[rs]
        rstart = t[rs]
        deadline = rstart + self._hold(rst == CLEAR)
        nxt = np.minimum(re, n - 1)
        closed = (re < n) & (s[nxt] == rstream)
        qual = closed & (t[nxt] >= deadline) & ((rst == FIRE) | (rst == CLEAR))
        # the value to report: the last point of the run strictly before raised_at, or the
        # point that started it when for is 0 (ties at raised_at then cannot depend on batching)
        lt = (t < np.repeat(deadline, re - rs)).astype(np.intp)
        vi = rs + np.maximum(np.add.reduceat(lt, rs) - 1, 0)
        events: list[AlertEvent] = []
        rgs = group_starts(rstream)  # first run of every stream
        if qual.any():
            act = self.active[rstream]
            rel = qual & (((rst == FIRE) & ~act) | ((rst == CLEAR) & act))
            rge = np.append(rgs[1:], len(rs))
            for g in np.unique(np.searchsorted(rgs, np.flatnonzero(rel), "right") - 1).tolist():
                ra, rb = int(rgs[g]), int(rge[g])
                sid = int(rstream[ra])
                on = bool(self.active[sid])
                for q in (ra + np.flatnonzero(qual[ra:rb])).tolist():
                    if rst[q] == FIRE and not on:
                        i = int(vi[q])
                        events.append(self._raise(sid, int(deadline[q]), float(val[i]), float(aux[i])))
                        on = True
                    elif rst[q] == CLEAR and on:
                        events.append(self._clear(sid, int(deadline[q])))
                        on = False
                self.active[sid] = on
        last = np.append(rgs[1:] - 1, len(rs) - 1)
        ls = rstream[last]
        on = self.active[ls]
        lst = rst[last]
        keep = (~on & (lst == FIRE)) | (on & (lst == CLEAR))
        self.pend[ls] = np.where(keep, rstart[last], NONE)
        li = vi[last]
        self.pend_val[ls] = val[li]
        self.pend_aux[ls] = aux[li]
        self._next_due = NONE
        self._remode(ls)
        return events

    def _hold(self, active: B) -> I64:
        """How long a run must last: ``clear.for`` for a clear of an active alert, else ``for``."""
        return np.where(active, self.rule.clear_for_ns, self.rule.for_ns)

    # --- watermark --------------------------------------------------------------------------
    def advance(self, watermark: int) -> list[AlertEvent]:
        if watermark < self._next_due:
            return []
        m = len(self.names)
        idx = np.flatnonzero(self.pend[:m] != NONE)
        if len(idx) == 0:
            self._next_due = INF
            return []
        act = self.active[idx]
        dl = self.pend[idx] + self._hold(act)
        due = dl <= watermark
        rest = dl[~due]
        self._next_due = int(rest.min()) if len(rest) else INF
        if not due.any():
            return []
        events: list[AlertEvent] = []
        for sid, at, on in zip(idx[due].tolist(), dl[due].tolist(), act[due].tolist(), strict=True):
            if on:
                events.append(self._clear(sid, at))
            else:
                events.append(self._raise(sid, at, float(self.pend_val[sid]), float(self.pend_aux[sid])))
            self.active[sid] = not on
            self.pend[sid] = NONE
        self._remode(idx[due])
        return events

    # --- state ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s, name in enumerate(self.names):
            out[name] = {
                "active": bool(self.active[s]),
                "pend": jt(int(self.pend[s])),
                "pend_val": jf(float(self.pend_val[s])),
                "pend_aux": jf(float(self.pend_aux[s])),
                **self._alert_state(s),
                "last_eval": jt(int(self.last_eval[s])),
                "prev": [jt(int(self.prev_ts[s])), jf(float(self.prev_val[s])), bool(self.prev_bad[s])],
                "held": [
                    [jf(float(self.held[s, j])), bool(self.held_bad[s, j]), bool(self.held_has[s, j])]
                    for j in range(self.slots)
                ],
            }
        return out

    def restore(self, state: dict[str, Any]) -> None:
        for name, st in state.items():
            s = self.index.get(name)
            if s is None:
                continue
            self.active[s] = st["active"]
            self.pend[s] = tj(st["pend"])
            self.pend_val[s] = fj(st["pend_val"])
            self.pend_aux[s] = fj(st["pend_aux"])
            self._restore_alert(s, st)
            self.last_eval[s] = tj(st["last_eval"])
            pts, pv, pb = st["prev"]
            self.prev_ts[s], self.prev_val[s], self.prev_bad[s] = tj(pts), fj(pv), pb
            for j, (hv, hb, hh) in enumerate(st["held"][: self.slots]):
                self.held[s, j], self.held_bad[s, j], self.held_has[s, j] = fj(hv), hb, hh
        self._next_due = NONE
        self._remode(np.arange(len(self.names), dtype=np.intp))


def _merge(orig: Any, extra: Any, real: Any, pos: Any) -> Any:
    """``orig`` with ``extra`` placed at ``pos`` (np.insert without its index sort)."""
    out = np.empty(len(real), dtype=orig.dtype)
    out[real] = orig
    out[pos] = extra
    return out
