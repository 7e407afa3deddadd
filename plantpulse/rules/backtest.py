"""Run rules over recorded samples and collect complete alerts (raise paired with clear).

Pure apart from the callback: batches in, alert records out. The end of the input advances
the watermark to the last timestamp seen (SPEC §4 rule 4); alerts still active then keep
``cleared_at = None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from plantpulse.alerts import AlertEvent, Severity
from plantpulse.rules.engine import Engine, EngineStats
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.timefmt import NS_PER_S, iso_ms


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: str
    rule: str
    tag: str
    asset: str
    severity: Severity
    raised_at: int
    cleared_at: int | None
    value: float
    message: str
    notify: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "tag": self.tag,
            "asset": self.asset,
            "severity": self.severity,
            "raised_at": iso_ms(self.raised_at),
            "cleared_at": None if self.cleared_at is None else iso_ms(self.cleared_at),
            "value": self.value if math.isfinite(self.value) else None,
            "message": self.message,
            "notify": self.notify,
        }


@dataclass
class BacktestResult:
    alerts: list[AlertRecord]
    stats: EngineStats
    first_ts: int | None = None
    last_ts: int | None = None
    per_rule: dict[str, int] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return (self.last_ts - self.first_ts) / (3600 * NS_PER_S)


class AlertCollector:
    """Pairs raised and cleared events into AlertRecords, in raise order."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}
        self.alerts: list[AlertRecord] = []

    def add(self, events: Iterable[AlertEvent]) -> None:
        for ev in events:
            key = (ev.rule, ev.tag)
            if ev.kind == "raised":
                self._open[key] = len(self.alerts)
                self.alerts.append(
                    AlertRecord(
                        ev.alert_id,
                        ev.rule,
                        ev.tag,
                        ev.asset,
                        ev.severity,
                        ev.raised_at,
                        None,
                        ev.value,
                        ev.message,
                        ev.notify,
                    )
                )
            else:
                i = self._open.pop(key, None)
                if i is not None:
                    a = self.alerts[i]
                    self.alerts[i] = AlertRecord(
                        a.id,
                        a.rule,
                        a.tag,
                        a.asset,
                        a.severity,
                        a.raised_at,
                        ev.at,
                        a.value,
                        a.message,
                        a.notify,
                    )

    def sorted(self) -> list[AlertRecord]:
        return sorted(self.alerts, key=lambda a: (a.raised_at, a.rule, a.tag))


def backtest(
    rules: Sequence[Rule],
    batches: Iterable[SampleBatch],
    tags: TagRegistry,
    on_batch: Callable[[int], None] | None = None,
    end: int | None = None,
) -> BacktestResult:
    """Evaluate ``rules`` over ``batches``; ``end`` overrides the final watermark."""
    eng = Engine(rules, tags)
    out = AlertCollector()
    first: int | None = None
    for b in batches:
        if len(b) == 0:
            continue
        lo = int(b.ts.min())
        first = lo if first is None else min(first, lo)
        out.add(eng.process(b))
        if on_batch is not None:
            on_batch(len(b))
    last = eng.watermark if end is None else end
    if last is not None:
        out.add(eng.advance(last))
    alerts = out.sorted()
    per_rule = {r.id: 0 for r in rules}
    for a in alerts:
        per_rule[a.rule] += 1
    return BacktestResult(alerts, eng.stats, first, last, per_rule)
