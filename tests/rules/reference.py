"""The naive reference the engine is checked against: SPEC §4 driven one sample at a time.

Deliberately simple and slow: samples are fed one by one in time order; each stream's
condition is judged at every sample of any of its inputs (zero-order hold), using the rule's
own predicates on plain floats, and stepped through the specification's state machine
(``plantpulse.rules.lifecycle``); the watermark is each sample's timestamp. It shares the
compiled rule and the lifecycle with the engine, never the engine's batching, runs, tables
or fast paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plantpulse.rules import lifecycle
from plantpulse.rules.lifecycle import INACTIVE, Cleared, Clearing, Firing, State, Status, Transition
from plantpulse.rules.model import Expression, Rate, Rule, Stale
from plantpulse.samples import Quality, Sample


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
    state: State = INACTIVE
    last: tuple[int, float] | None = None  # stale rules: the tag's latest sample (ts, value)
    alerts: list[Alert] = field(default_factory=list)  # cleared ones

    def apply(self, moved: tuple[State, list[Transition]]) -> None:
        self.state, out = moved
        for tr in out:
            if isinstance(tr, Cleared):
                self.alerts.append(Alert(self.rule.id, self.tag, tr.raised_at, tr.at, _v(tr.value)))


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

    def _status(self, st: _Stream, inputs: list[str]) -> tuple[Status, float]:
        """The condition of ``st`` now, with every input holding its latest sample."""
        cond = st.rule.condition
        vals = [self.latest.get(name) for name in inputs]
        v0 = vals[0]
        value = v0[1] if v0 else math.nan
        if any(v is None or v[2] for v in vals):
            return Status.UNKNOWN, value
        assert v0 is not None
        rate = None
        if isinstance(cond, Rate):
            p = self.prev.get(st.tag)
            if p is None or p[2] or v0[0] <= p[0]:
                return Status.UNKNOWN, value
            rate = (v0[1] - p[1]) / (v0[0] - p[0]) * cond.per_ns
        cols = [v[1] for v in vals]  # type: ignore[index]
        if isinstance(cond, Expression):  # expressions evaluate arrays only
            cols = [np.array([c]) for c in cols]
        assert not isinstance(cond, Stale)
        fire, clear = cond.judge(cols, rate)  # type: ignore[arg-type]
        return (Status.FIRE if fire else Status.CLEAR if clear else Status.BAND), value

    def feed(self, s: Sample) -> None:
        bad = s.quality == Quality.BAD or math.isnan(s.value)
        last = self.latest.get(s.tag)
        if last is not None and s.ts < last[0]:
            return  # late
        if last is not None:
            self.prev[s.tag] = last
        self.latest[s.tag] = (s.ts, s.value, bad)
        for st, inputs in self._streams_reading(s.tag):
            rule = st.rule
            if isinstance(rule.condition, Stale):  # a sample of any quality: the silence ends
                st.apply(lifecycle.silence(st.state, st.last, s.ts, rule.condition.stale_ns, rule))
                st.apply(lifecycle.step(st.state, s.ts, Status.CLEAR, s.value, rule))
                st.last = (s.ts, s.value)
            else:
                status, value = self._status(st, inputs)
                st.apply(lifecycle.step(st.state, s.ts, status, value, rule))
        self.tick(s.ts)

    def tick(self, watermark: int) -> None:
        for st in self.streams.values():
            rule = st.rule
            if isinstance(rule.condition, Stale):
                st.apply(lifecycle.silence(st.state, st.last, watermark, rule.condition.stale_ns, rule))
            st.apply(lifecycle.tick(st.state, watermark, rule))

    def alerts(self) -> list[Alert]:
        out = [a for st in self.streams.values() for a in st.alerts]
        out += [
            Alert(st.rule.id, st.tag, st.state.raised_at, None, _v(st.state.value))
            for st in self.streams.values()
            if isinstance(st.state, Firing | Clearing)
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
