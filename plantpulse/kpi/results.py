"""KPI results of a closed window: per stream, rolled up the asset tree, OEE as a composite.

A result carries what a scorecard needs and nothing is silently wrong: its numerator and
denominator (counts, seconds, or value x seconds for a mean), its coverage (the share of the
window, or of its planned time, in which every input had a good value) and ``partial`` when
that share is below the KPI's ``min_coverage``. Roll-ups add numerators, denominators and
covered time over the streams below an asset; min and max take the extreme, a percentile
reads the summed histogram. An OEE multiplies its three components at the same window and
asset, roll-ups included; its coverage is the lowest of theirs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantpulse.kpi.acc import Acc
from plantpulse.kpi.calendar import Window
from plantpulse.kpi.model import Kpi
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.streams import Streams, Table
from plantpulse.people.schema import ROOT
from plantpulse.timefmt import NS_PER_S, iso_ms

COLUMNS = (
    "window",
    "by",
    "start",
    "end",
    "asset",
    "kpi",
    "value",
    "numerator",
    "denominator",
    "coverage",
    "crew",
    "target",
    "met",
    "partial",
    "status",
    "rollup",
)
"""The ``kpi_results`` columns (deliver item 3) plus the window's kind and edges."""


@dataclass(frozen=True, slots=True)
class AlertMark:
    """An alert raise as KPIs count it (built from an ``AlertEvent`` or a stored ``Alert``)."""

    raised_at: int
    rule: str
    asset: str
    severity: str


@dataclass(frozen=True, slots=True)
class KpiResult:
    window: Window
    asset: str  # "*" is the whole site
    kpi: str
    value: float | None
    numerator: float | None
    denominator: float | None
    coverage: float
    crew: str | None
    target: str | None
    met: bool | None
    partial: bool
    status: str | None = None  # ok | warning | missed (None without a target or a value)
    rollup: bool = False
    on_shift: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def row(self) -> dict[str, Any]:
        """One ``kpi_results`` row as plain data (times ISO-8601 UTC)."""
        return {
            "window": self.window.label,
            "by": self.window.by,
            "start": iso_ms(self.window.start),
            "end": iso_ms(self.window.end),
            "asset": self.asset,
            "kpi": self.kpi,
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "coverage": self.coverage,
            "crew": self.crew,
            "target": self.target,
            "met": self.met,
            "partial": self.partial,
            "status": self.status,
            "rollup": self.rollup,
        }


@dataclass
class _Fig:
    """Sums of one (KPI, asset) in one window, before they become a value."""

    num: float | None = None
    den: float | None = None
    cov: int = 0
    span: int = 0
    mn: float = math.inf
    mx: float = -math.inf
    hist: np.ndarray[Any, np.dtype[np.int64]] | None = None

    def add(self, o: _Fig) -> None:
        self.num = None if self.num is None or o.num is None else self.num + o.num
        self.den = None if self.den is None or o.den is None else self.den + o.den
        self.cov += o.cov
        self.span += o.span
        self.mn, self.mx = min(self.mn, o.mn), max(self.mx, o.mx)
        if o.hist is not None:
            self.hist = o.hist.copy() if self.hist is None else self.hist + o.hist


def _s(ns: float) -> float:
    return float(ns) / NS_PER_S


def _figures(
    kpi: Kpi,
    t: Table,
    streams: Streams,
    *,
    acc: Acc,
    planned: tuple[Acc, int] | None,
    length: int,
    alerts: Sequence[AlertMark],
) -> list[_Fig]:
    n = len(t.assets)
    if kpi.kind == "alert_count":
        counts = [0] * n
        for a in alerts:
            if not kpi.matches_rule(a.rule) or (
                kpi.severities is not None and a.severity not in kpi.severities
            ):
                continue
            for level in (a.asset, *_path_levels(a.asset)):
                i = t.index.get(level)
                if i is not None:
                    counts[i] += 1
        return [_Fig(float(c), None, length, length) for c in counts]
    ins = np.array(t.inputs, dtype=np.intp).reshape(n, -1)
    g = np.array(t.groups, dtype=np.intp)
    f = acc.f
    if kpi.kind in ("yield", "ratio"):
        num, den = f["inc"][ins[:, 0]], f["inc"][ins[:, 1]]
        return [
            _Fig(float(a), float(b), int(c), length) for a, b, c in zip(num, den, acc.cov[g], strict=True)
        ]
    if kpi.kind in ("availability", "performance"):
        assert planned is not None
        pacc, plen = planned
        pf = pacc.f
        if kpi.kind == "availability":
            num_ns = pf["run"][ins[:, 0]].astype(np.float64)
            return [_Fig(_s(a), _s(plen), int(c), plen) for a, c in zip(num_ns, pacc.cov[g], strict=True)]
        parts, run = f["inc"][ins[:, 0]], pf["run"][ins[:, 1]]  # every part counts, breaks too
        ideal = _s(kpi.ideal_cycle)
        return [
            _Fig(ideal * float(p), _s(r), int(c), plen)
            for p, r, c in zip(parts, run, pacc.cov[g], strict=True)
        ]
    tag = ins[:, 0]
    cov = acc.cov[g]
    if kpi.stat == "mean":
        return [_Fig(_s(a), _s(c), int(c), length) for a, c in zip(f["int"][tag], cov, strict=True)]
    if kpi.stat == "outside":
        return [_Fig(_s(a), _s(c), int(c), length) for a, c in zip(f["out"][tag], cov, strict=True)]
    if kpi.stat in ("min", "max"):
        return [
            _Fig(None, None, int(c), length, float(lo), float(hi))
            for lo, hi, c in zip(f["min"][tag], f["max"][tag], cov, strict=True)
        ]
    off, nb = streams.hist_off[tag], streams.hist_n[tag]
    return [
        _Fig(None, None, int(c), length, hist=acc.hist[o : o + k].copy() if o >= 0 else None)
        for o, k, c in zip(off, nb, cov, strict=True)
    ]


def _path_levels(asset: str) -> list[str]:
    parts = asset.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _value(kpi: Kpi, fig: _Fig) -> float | None:
    if kpi.kind == "alert_count":
        return fig.num
    if fig.span > 0 and fig.cov == 0:
        return None  # no good data at all: nothing to say
    if kpi.stat == "min":
        return fig.mn if math.isfinite(fig.mn) else None
    if kpi.stat == "max":
        return fig.mx if math.isfinite(fig.mx) else None
    if kpi.stat == "percentile":
        return _percentile(fig.hist, kpi)
    if fig.num is None or not fig.den:
        return None
    return fig.num / fig.den


def _percentile(hist: np.ndarray[Any, np.dtype[np.int64]] | None, kpi: Kpi) -> float | None:
    """Time-weighted percentile, linear inside the bin that reaches it."""
    if hist is None or kpi.bins is None or kpi.p is None:
        return None
    total = int(hist.sum())
    if total == 0:
        return None
    want = total * kpi.p / 100
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, want))
    before = int(cum[b - 1]) if b else 0
    lo, _, width = kpi.bins
    return lo + width * (b + (want - before) / int(hist[b]))


class Closer:
    """Turns the sums of a closed window into results (roll-ups, OEE, crew, on-shift)."""

    def __init__(self, plan: KpiPlan, streams: Streams) -> None:
        self.plan = plan
        self.streams = streams

    def results(
        self,
        w: Window,
        acc: Acc,
        planned: dict[int, Acc],
        alerts: Sequence[AlertMark],
    ) -> list[KpiResult]:
        plan = self.plan
        length = w.end - w.start
        people: dict[str, tuple[str | None, dict[str, list[str]]]] = {}

        def who(asset: str) -> tuple[str | None, dict[str, list[str]]]:
            if w.by != "shift":
                return None, {}
            if asset not in people:
                a = ROOT if asset == "*" else asset
                people[asset] = (plan.calendar.crew(a, w), plan.calendar.on_shift(a, w))
            return people[asset]

        by_kpi: dict[str, list[KpiResult]] = {}
        wanted = [k for k in plan.kpis if plan.wants(k, w)]
        for kpi in wanted:
            table = self.streams.tables.get(kpi.id)
            if table is None or not table.assets:
                continue
            g = plan.planning.get(kpi.id)
            pl = (planned[g], plan.planned_time(g, w.start, w.end)) if g is not None else None
            figs = _figures(kpi, table, self.streams, acc=acc, planned=pl, length=length, alerts=alerts)
            by_kpi[kpi.id] = self._rows(kpi, w, table.assets, figs, who)
        for kpi in wanted:
            if kpi.kind == "oee":
                by_kpi[kpi.id] = self._oee(
                    kpi, {c: {r.asset: r for r in by_kpi.get(c, [])} for c in kpi.components}
                )
        return [r for kpi in wanted for r in by_kpi.get(kpi.id, [])]

    def _rows(
        self,
        kpi: Kpi,
        w: Window,
        assets: list[str],
        figs: list[_Fig],
        who: Callable[[str], tuple[str | None, dict[str, list[str]]]],
    ) -> list[KpiResult]:
        order = sorted(range(len(assets)), key=assets.__getitem__)
        own = set(assets)
        ups: dict[str, _Fig] = {}
        dist: dict[str, int] = {}  # levels above the nearest stream: report near ones first
        if kpi.rollup:
            for i in order:
                for d, level in enumerate(self.plan.roster.ancestors(assets[i])[1:]):
                    name = level or "*"
                    if name in own:
                        continue
                    if name not in ups:
                        ups[name] = _Fig(0.0, 0.0) if figs[i].num is not None else _Fig()
                    ups[name].add(figs[i])
                    dist[name] = min(d, dist.get(name, d))
        rows = [self._result(kpi, w, assets[i], figs[i], who, rollup=False) for i in order]
        rows += [
            self._result(kpi, w, a, ups[a], who, rollup=True) for a in sorted(ups, key=lambda a: (dist[a], a))
        ]
        return rows

    def _result(
        self,
        kpi: Kpi,
        w: Window,
        asset: str,
        fig: _Fig,
        who: Callable[[str], tuple[str | None, dict[str, list[str]]]],
        *,
        rollup: bool,
    ) -> KpiResult:
        value = _value(kpi, fig)
        coverage = fig.cov / fig.span if fig.span > 0 else 1.0
        crew, on_shift = who(asset)
        status = kpi.status(value)
        return KpiResult(
            window=w,
            asset=asset,
            kpi=kpi.id,
            value=value,
            numerator=fig.num,
            denominator=fig.den,
            coverage=coverage,
            crew=crew,
            target=kpi.target.text if kpi.target else None,
            met=None if status is None else status != "missed",
            partial=coverage < kpi.min_coverage,
            status=status,
            rollup=rollup,
            on_shift=on_shift,
        )

    def _oee(self, kpi: Kpi, by_kpi: dict[str, dict[str, KpiResult]]) -> list[KpiResult]:
        parts = [by_kpi.get(c, {}) for c in kpi.components]
        out = []
        for asset, first in parts[0].items():
            rs = [first] + [p.get(asset) for p in parts[1:]]
            if any(r is None for r in rs):
                continue
            comps = [r for r in rs if r is not None]
            value = _product([r.value for r in comps])
            status = kpi.status(value)
            coverage = min(r.coverage for r in comps)
            out.append(
                KpiResult(
                    window=first.window,
                    asset=asset,
                    kpi=kpi.id,
                    value=value,
                    numerator=_product([r.numerator for r in comps]),
                    denominator=_product([r.denominator for r in comps]),
                    coverage=coverage,
                    crew=first.crew,
                    target=kpi.target.text if kpi.target else None,
                    met=None if status is None else status != "missed",
                    partial=any(r.partial for r in comps) or coverage < kpi.min_coverage,
                    status=status,
                    rollup=first.rollup,
                    on_shift=first.on_shift,
                )
            )
        return out


def _product(xs: list[float | None]) -> float | None:
    out = 1.0
    for x in xs:
        if x is None:
            return None
        out *= x
    return out
