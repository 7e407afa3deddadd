"""A validated KPI: what the calculation needs, nothing about YAML.

Every kind reads at most two tags, named by templates with ``{asset}``; ``inputs`` lists
them in a fixed order per kind (see ``INPUTS``). Roll-ups add numerators and denominators,
never values, so a line's yield is its parts over its parts, not a mean of welders' yields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from plantpulse.kpi.schema import AlarmSettings, Level, Stat, Target, WindowBy
from plantpulse.people.schema import Weekday
from plantpulse.rules.model import glob_regex, is_glob

Kind = Literal["yield", "ratio", "availability", "performance", "oee", "time_weighted", "alert_count"]

INPUTS: dict[Kind, tuple[str, ...]] = {
    "yield": ("good", "total"),
    "ratio": ("numerator", "denominator"),
    "availability": ("state",),
    "performance": ("total", "state"),
    "oee": (),
    "time_weighted": ("tag",),
    "alert_count": (),
}
"""The YAML keys of each kind's input tags, in the order of ``Kpi.inputs``."""

FRACTION_KINDS = frozenset({"yield", "ratio", "availability", "performance", "oee"})
PLANNED_KINDS = frozenset({"availability", "performance"})
"""Kinds measured over planned production time (shift time minus planned breaks)."""


@dataclass(frozen=True, slots=True)
class Break:
    """A daily planned break in site wall-clock minutes; ``end <= start`` ends the next day."""

    start: int
    end: int
    days: tuple[Weekday, ...] | None = None


@dataclass(frozen=True, eq=False)
class Kpi:
    id: str
    kind: Kind
    assets: str = ""
    name: dict[str, str] = field(default_factory=dict)
    windows: tuple[WindowBy, ...] = ("shift",)
    inputs: tuple[str, ...] = ()
    target: Target | None = None
    warning: Level | None = None
    notify: str | tuple[str, ...] | None = None
    min_coverage: float = 0.9
    rollup: bool = True
    unit: str | None = None
    modulus: float | None = None  # counters
    running: tuple[float, ...] = ()  # availability, performance
    ideal_cycle: int = 0  # performance, ns
    stat: Stat | None = None  # time_weighted
    p: float | None = None
    bins: tuple[float, float, float] | None = None  # from, to, width
    band: tuple[float, float] | None = None
    rules: tuple[str, ...] = ()  # alert_count
    severities: tuple[str, ...] | None = None
    components: tuple[str, str, str] = ("", "", "")  # oee: availability, performance, quality
    shifts: tuple[str, ...] | None = None  # shift windows; None: the team's default set
    breaks: tuple[Break, ...] = ()
    source: str = ""
    _assets_re: re.Pattern[str] | None = field(default=None, repr=False)
    _rules_re: tuple[re.Pattern[str], ...] = field(default=(), repr=False)

    @property
    def fraction(self) -> bool:
        """Values are shares (shown as %): ratios and the share of time outside a band."""
        return self.kind in FRACTION_KINDS or self.stat == "outside"

    def matches_asset(self, asset: str) -> bool:
        if self._assets_re is None:
            return asset == self.assets.strip("/")
        return self._assets_re.match(asset) is not None

    def matches_rule(self, rule: str) -> bool:
        return any(r.match(rule) for r in self._rules_re)

    def display_name(self, language: str = "en") -> str:
        return self.name.get(language) or next(iter(self.name.values()), self.id)

    def status(self, value: float | None) -> Literal["ok", "warning", "missed"] | None:
        """``missed`` fails the target, ``warning`` meets it but not the warning level."""
        t = self.target
        if t is None or value is None:
            return None
        if not t.met(value):
            return "missed"
        w = self.warning
        if w is not None and (value < w.value if t.higher_is_better else value > w.value):
            return "warning"
        return "ok"


def compile_globs(kpi: Kpi) -> Kpi:
    """The same KPI with its asset and rule patterns compiled."""
    from dataclasses import replace

    assets_re = glob_regex(kpi.assets.strip("/")) if is_glob(kpi.assets) else None
    return replace(kpi, _assets_re=assets_re, _rules_re=tuple(glob_regex(r) for r in kpi.rules))


@dataclass(frozen=True)
class KpiSet:
    """Every KPI of a plant, its parameter tags and alarm settings, from one or more files."""

    kpis: tuple[Kpi, ...] = ()
    parameters: tuple[str, ...] = ()
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    files: tuple[str, ...] = ()

    def get(self, kpi_id: str) -> Kpi | None:
        return next((k for k in self.kpis if k.id == kpi_id), None)
