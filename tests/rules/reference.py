"""A naive per-sample evaluator written straight from SPEC §4, to check the engine against.

Deliberately simple and slow: samples are processed one at a time in time order, every
stream is a handful of scalars, and the watermark advances to each sample's timestamp.
It shares only the compiled rule (limits, expression) with the engine, never its logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plantpulse.rules.model import Rule
from plantpulse.samples import Quality, Sample

FIRE, CLEAR, BAND, UNKNOWN = "fire", "clear", "band", "unknown"


@dataclass(frozen=True)
class Alert:
    rule: str
    tag: str
    raised_at: int
    cleared_at: int | None
    value: float | None  # None for NaN, so alerts compare equal


@dataclass
class _Stream:
    rule: Rule
    tag: str
    active: bool = False
    t0: int | None = None  # pending fire since
    t0_value: float = math.nan
    t1: int | None = None  # pending clear since
    raised_at: int = 0
    raised_value: float = math.nan
    last_ts: int | None = None  # stale rules
    last_value: float = math.nan
    alerts: list[Alert] = field(default_factory=list)

    def raise_(self, at: int, value: float) -> None:
        self.active, self.raised_at, self.raised_value = True, at, value
        self.t0 = None

    def clear(self, at: int) -> None:
        self.alerts.append(Alert(self.rule.id, self.tag, self.raised_at, at, _v(self.raised_value)))
        self.active, self.t1 = False, None


def _status(rule: Rule, x: float, fire_clear: tuple[bool, bool] | None = None) -> str:
    if fire_clear is not None:
        fire, clear = fire_clear
    elif rule.kind == "outside":
        fire, clear = (x < rule.low or x > rule.high), (rule.clear_low <= x <= rule.clear_high)
    elif rule.kind == "deviation":
        fire, clear = abs(x) > rule.threshold, abs(x) <= rule.clear_threshold
    elif rule.kind == "above" or (rule.kind == "rate" and rule.direction == "above"):
        fire, clear = x > rule.threshold, x <= rule.clear_threshold
    else:
        fire, clear = x < rule.threshold, x >= rule.clear_threshold
    return FIRE if fire else CLEAR if clear else BAND


class Reference:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.latest: dict[str, tuple[int, float, bool]] = {}
        self.prev: dict[str, tuple[int, float, bool]] = {}  # the sample before latest, per tag

    def _streams_reading(self, tag: str) -> list[tuple[_Stream, list[str]]]:
        out = []
        for rule in self.rules:
            candidates = {s.tag for s in self.streams.values() if s.rule is rule}
            if rule.matches(tag):
                candidates.add(tag)
            for m in sorted(candidates):
                inputs = rule.input_names(m)
                if tag in inputs:
                    key = (rule.id, m)
                    if key not in self.streams:
                        self.streams[key] = _Stream(rule, m)
                    out.append((self.streams[key], inputs))
        return out

    def _evaluate(self, st: _Stream, inputs: list[str]) -> tuple[str, float]:
        rule = st.rule
        vals = [self.latest.get(name) for name in inputs]
        v0 = vals[0]
        value = v0[1] if v0 else math.nan
        if any(v is None or v[2] for v in vals):
            return UNKNOWN, value
        assert v0 is not None
        if rule.kind == "rate":
            p = self.prev.get(st.tag)
            if p is None or p[2] or v0[0] <= p[0]:
                return UNKNOWN, value
            return _status(rule, (v0[1] - p[1]) / (v0[0] - p[0]) * rule.per_ns), value
        if rule.kind == "deviation":
            sp = rule.setpoint if rule.setpoint is not None else vals[1][1]  # type: ignore[index]
            return _status(rule, v0[1] - sp), value
        if rule.kind == "expr":
            assert rule.expr is not None
            env = {name: np.array([vals[slot][1]]) for name, slot in rule.expr_slots}  # type: ignore[index]
            fire = bool(rule.expr(env)[0])
            return _status(rule, 0.0, (fire, not fire)), value
        return _status(rule, v0[1]), value

    def feed(self, s: Sample) -> None:
        bad = s.quality == Quality.BAD or math.isnan(s.value)
        last = self.latest.get(s.tag)
        if last is not None and s.ts < last[0]:
            return  # late
        if last is not None:
            self.prev[s.tag] = last
        self.latest[s.tag] = (s.ts, s.value, bad)
        for st, inputs in self._streams_reading(s.tag):
            if st.rule.kind == "stale":
                self._stale_sample(st, s)
            else:
                status, value = self._evaluate(st, inputs)
                self._step(st, s.ts, status, value)
        self.tick(s.ts)

    def _stale_sample(self, st: _Stream, s: Sample) -> None:
        gap = st.rule.stale_ns + st.rule.for_ns
        if st.active:
            st.clear(s.ts)
        elif st.last_ts is not None and s.ts - st.last_ts >= gap:
            st.raise_(st.last_ts + gap, st.last_value)
            st.clear(s.ts)
        st.last_ts, st.last_value = s.ts, s.value

    def _step(self, st: _Stream, ts: int, status: str, value: float) -> None:
        rule = st.rule
        if not st.active and st.t0 is not None:
            if status == FIRE and ts < st.t0 + rule.for_ns:
                st.t0_value = value  # last sample of the true run before raised_at
            if ts >= st.t0 + rule.for_ns:
                st.raise_(st.t0 + rule.for_ns, st.t0_value)
        elif st.active and st.t1 is not None and ts >= st.t1 + rule.clear_for_ns:
            st.clear(st.t1 + rule.clear_for_ns)
        if not st.active:
            if status != FIRE:
                st.t0 = None
            elif st.t0 is None:
                st.t0, st.t0_value = ts, value
                if rule.for_ns == 0:
                    st.raise_(ts, value)
        elif status != CLEAR:
            st.t1 = None
        elif st.t1 is None:
            st.t1 = ts
            if rule.clear_for_ns == 0:
                st.clear(ts)

    def tick(self, watermark: int) -> None:
        for st in self.streams.values():
            rule = st.rule
            if rule.kind == "stale":
                gap = rule.stale_ns + rule.for_ns
                if not st.active and st.last_ts is not None and st.last_ts + gap <= watermark:
                    st.raise_(st.last_ts + gap, st.last_value)
            elif not st.active and st.t0 is not None and st.t0 + rule.for_ns <= watermark:
                st.raise_(st.t0 + rule.for_ns, st.t0_value)
            elif st.active and st.t1 is not None and st.t1 + rule.clear_for_ns <= watermark:
                st.clear(st.t1 + rule.clear_for_ns)

    def alerts(self) -> list[Alert]:
        out = [a for st in self.streams.values() for a in st.alerts]
        out += [
            Alert(st.rule.id, st.tag, st.raised_at, None, _v(st.raised_value))
            for st in self.streams.values()
            if st.active
        ]
        return sorted(out, key=_key)


def _v(x: float) -> float | None:
    return None if math.isnan(x) else x


def _key(a: Alert) -> tuple[str, str, int]:
    return (a.rule, a.tag, a.raised_at)


def reference_alerts(rules: list[Rule], samples: list[Sample]) -> list[Alert]:
    ref = Reference(rules)
    for s in sorted(samples, key=lambda x: x.ts):
        ref.feed(s)
    return ref.alerts()
