"""The load a change would have produced: old and new rules over the same stored samples.

    p = await predict(store, old_rules, new_rules, calendar, settings, start=t0, end=t1)
    p.to_json()    # per rule: alerts old/new; per operator position: alarms per 10 min, peak,
                   # flood share, chattering, EEMUA verdict, old and new

Choices, and why:

* The samples are each tag's held value at ``start`` (zero-order hold) and every sample in
  [start, end), read a day at a time, in time order; the final watermark is the last sample's
  timestamp (SPEC §4 rule 4). That is exactly ``rules backtest`` over the same samples
  exported to a file, so a person can check a prediction by hand.
* One engine runs the live rule set, a second only the rules the change adds or alters: rule
  streams are independent, so the new load is the live run without the old versions of those
  rules plus the second run, for a fraction of a second full run.
* Alarm figures are ``kpi.alarms.alarm_kpis`` over the backtest's alerts (no acknowledgements
  exist in a backtest), per operator position over the whole range, with the plant's alarm
  settings (those of the proposed KPI files for the new side, when the change alters them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plantpulse.alerts import Alert
from plantpulse.kpi.alarms import AlarmFigures, alarm_kpis
from plantpulse.kpi.calendar import Calendar
from plantpulse.kpi.schema import AlarmSettings
from plantpulse.rules.backtest import AlertCollector, AlertRecord
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.base import Store

__all__ = ["Prediction", "predict", "read_range", "wanted_tags"]

DAY = 86400 * 10**9
FIGURES = ("alarms", "avg_per_interval", "peak_per_interval", "flood_share", "verdict")


@dataclass(frozen=True)
class Prediction:
    start: int
    end: int
    samples: int
    old: list[AlertRecord]
    new: list[AlertRecord]
    rules: list[str]  # the rules whose counts are reported (those of the proposed files)
    old_figures: list[AlarmFigures]
    new_figures: list[AlarmFigures]
    interval: int

    def per_rule(self) -> list[dict[str, Any]]:
        def count(alerts: list[AlertRecord]) -> dict[str, int]:
            out: dict[str, int] = {}
            for a in alerts:
                out[a.rule] = out.get(a.rule, 0) + 1
            return out

        old, new = count(self.old), count(self.new)
        return [{"id": r, "old": old.get(r, 0), "new": new.get(r, 0)} for r in self.rules]

    def positions(self) -> list[dict[str, Any]]:
        def by_pos(figs: list[AlarmFigures]) -> dict[str, dict[str, Any]]:
            return {
                f.position: {
                    "alarms": f.alarms,
                    "avg_per_interval": round(f.avg_per_interval, 6),
                    "peak_per_interval": f.peak_per_interval,
                    "flood_share": round(f.flood_share, 6),
                    "chattering": len(f.chattering),
                    "verdict": f.verdict,
                }
                for f in figs
                if f.window is None
            }

        old, new = by_pos(self.old_figures), by_pos(self.new_figures)
        quiet = {"alarms": 0, "avg_per_interval": 0.0, "peak_per_interval": 0, "flood_share": 0.0,
                 "chattering": 0, "verdict": "acceptable"}  # fmt: skip
        return [
            {"position": p, "old": old.get(p, quiet), "new": new.get(p, quiet)}
            for p in sorted(set(old) | set(new))
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "samples": self.samples,
            "interval": self.interval,
            "alerts": {"old": len(self.old), "new": len(self.new)},
            "rules": self.per_rule(),
            "positions": self.positions(),
        }


def wanted_tags(rules: Iterable[Rule], names: Iterable[str]) -> list[str]:
    """Stored tag names some rule reads: matched tags and the setpoint / expr inputs they name."""
    rules = list(rules)
    known = list(names)
    have = set(known)
    out: dict[str, None] = {}
    for name in known:
        for r in rules:
            if r.matches(name):
                out.update(dict.fromkeys(n for n in r.input_names(name) if n in have))
    return sorted(out)


async def read_range(
    store: Store, names: Sequence[str], start: int, end: int, tags: TagRegistry
) -> list[SampleBatch]:
    """The held values at ``start`` then [start, end), one batch per day, in time order."""
    out: list[SampleBatch] = []
    t = start
    while t < end:
        b = min(end, t + DAY)
        out.append(await store.read_samples(list(names), t, b, tags, prior=t == start))
        t = b
    return out


def _alerts(records: Iterable[AlertRecord]) -> list[Alert]:
    return [
        Alert(id=a.id, rule=a.rule, tag=a.tag, asset=a.asset, severity=a.severity, message=a.message,
              raised_at=a.raised_at, value=a.value if math.isfinite(a.value) else float("nan"),
              cleared_at=a.cleared_at, notify=a.notify)
        for a in records
    ]  # fmt: skip


def _run(rules: Sequence[Rule], batches: Sequence[SampleBatch], tags: TagRegistry) -> list[AlertRecord]:
    eng = Engine(rules, tags)
    out = AlertCollector()
    for b in batches:
        if len(b):
            out.add(eng.process(b))
    if eng.watermark is not None:
        out.add(eng.advance(eng.watermark))
    return out.sorted()


def compare(
    old_rules: Sequence[Rule],
    new_rules: Sequence[Rule],
    altered: set[str],
    batches: Sequence[SampleBatch],
    tags: TagRegistry,
) -> tuple[list[AlertRecord], list[AlertRecord]]:
    """(alerts of the old set, alerts of the new set); ``altered``: ids whose rule differs
    (added, changed or removed)."""
    old = _run(old_rules, batches, tags)
    fresh = _run([r for r in new_rules if r.id in altered], batches, tags)
    new = sorted(
        [a for a in old if a.rule not in altered] + fresh, key=lambda a: (a.raised_at, a.rule, a.tag)
    )
    return old, new


async def predict(
    store: Store,
    old_rules: Sequence[Rule],
    new_rules: Sequence[Rule],
    *,
    altered: set[str],
    report: Sequence[str],
    calendar: Calendar,
    settings: tuple[AlarmSettings, AlarmSettings],
    start: int,
    end: int,
) -> Prediction:
    """Backtest both sets over the stored samples of [start, end); ``report``: rule ids whose
    counts are listed; ``settings``: alarm settings (old, new)."""
    tags = TagRegistry()
    names = wanted_tags([*old_rules, *new_rules], [t.name for t in await store.tags()])
    batches = await read_range(store, names, start, end, tags) if names else []
    old, new = compare(old_rules, new_rules, altered, batches, tags)

    def figures(alerts: list[AlertRecord], s: AlarmSettings) -> list[AlarmFigures]:
        return alarm_kpis(_alerts(alerts), [], calendar, s, start=start, end=end)

    return Prediction(
        start=start,
        end=end,
        samples=sum(len(b) for b in batches),
        old=old,
        new=new,
        rules=list(report),
        old_figures=figures(old, settings[0]),
        new_figures=figures(new, settings[1]),
        interval=settings[1].interval,
    )


def alarm_settings(kpi_texts: Mapping[str, str]) -> AlarmSettings:
    """The ``alarms:`` settings of a set of KPI files (defaults when none gives them)."""
    from plantpulse.approvals.diff import items

    for file, text in kpi_texts.items():
        raw = items("kpis", text, file)[1].get("alarms")
        if raw is not None:
            return AlarmSettings.model_validate(raw)
    return AlarmSettings()
