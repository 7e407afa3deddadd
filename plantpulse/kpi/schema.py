"""The shape of a KPI file as quality engineers write it (docs/kpis.md), checked by pydantic.

Only structure and single-key values are checked here. Checks that span keys, KPIs or files
(component kinds of an OEE, a percentile without bins, names the team config must know) are
made by the loader, so each problem points at the key that causes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, field_validator, model_validator

from plantpulse.alerts import Severity
from plantpulse.people.schema import ClockTime, Language, Weekday
from plantpulse.schema import Duration, StrictModel

Number = Annotated[float, Field(allow_inf_nan=False)]
WindowBy = Literal["shift", "hour", "day", "week"]
WINDOW_KINDS: tuple[WindowBy, ...] = ("shift", "hour", "day", "week")
Stat = Literal["mean", "min", "max", "percentile", "outside"]

_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TARGET = re.compile(r"\s*(>=|<=|>|<|≥|≤)\s*" + _NUMBER + r"\s*(%?)\s*")
_LEVEL = re.compile(r"\s*" + _NUMBER + r"\s*(%?)\s*")
_OPS = {"≥": ">=", "≤": "<="}


@dataclass(frozen=True, slots=True)
class Target:
    """``">= 99.2%"``: a direction and a level; ``percent`` levels are fractions (0.992)."""

    op: Literal[">=", ">", "<=", "<"]
    value: float
    percent: bool
    text: str

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")

    def met(self, x: float) -> bool:
        return {">=": x >= self.value, ">": x > self.value, "<=": x <= self.value, "<": x < self.value}[
            self.op
        ]


@dataclass(frozen=True, slots=True)
class Level:
    """A plain level such as a warning edge: ``"99.5%"`` (0.995) or ``180``."""

    value: float
    percent: bool
    text: str


def _target(v: Any) -> Target:
    if isinstance(v, Target):
        return v
    m = _TARGET.fullmatch(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(f'write a target like ">= 99.2%" or "<= 1.5", not {v!r}')
    op, num, pct = m.groups()
    value = float(num) / 100 if pct else float(num)
    return Target(_OPS.get(op, op), value, bool(pct), v.strip())  # type: ignore[arg-type]


def _level(v: Any) -> Level:
    if isinstance(v, Level):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return Level(float(v), False, str(v))
    m = _LEVEL.fullmatch(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(f'write a level like "99.5%" or 180, not {v!r}')
    num, pct = m.groups()
    return Level(float(num) / 100 if pct else float(num), bool(pct), v.strip())


def _fraction(v: Any) -> float:
    lv = _level(v)
    if not 0 <= lv.value <= 1:
        raise ValueError(f"a share is between 0 and 1 (or 0% and 100%), not {lv.text}")
    return lv.value


TargetT = Annotated[Target, PlainValidator(_target), PlainSerializer(lambda t: t.text, return_type=str)]
LevelT = Annotated[Level, PlainValidator(_level), PlainSerializer(lambda t: t.text, return_type=str)]
Fraction = Annotated[float, PlainValidator(_fraction)]
"""A share written ``90%`` or ``0.9``."""


class _Common(StrictModel):
    id: str = Field(min_length=1, pattern=r"^[^\s]+$")
    name: str | dict[Language, str] | None = Field(None, description="display name, or {zh: ..., en: ...}")
    description: str | None = None
    windows: list[WindowBy] = Field(default_factory=lambda: list[WindowBy](["shift"]), min_length=1)
    target: TargetT | None = None
    warning: LevelT | None = Field(None, description="a level on the good side of the target")
    notify: str | list[str] | None = Field(None, description="a policy name, or roles and/or people")
    min_coverage: Fraction | None = Field(None, description="partial below this; default: the file's")
    rollup: bool = Field(True, description="also report every asset above the matched ones")
    unit: str | None = None

    @field_validator("windows")
    @classmethod
    def _unique(cls, v: list[WindowBy]) -> list[WindowBy]:
        if len(set(v)) != len(v):
            raise ValueError("a window kind is listed twice")
        return v


class _Assets(_Common):
    assets: str = Field(min_length=1, description="asset path or glob; {asset} in tag names")


class YieldSpec(_Assets):
    """Increments of a good-parts counter over increments of a total counter."""

    kind: Literal["yield"]
    good: str = Field(min_length=1)
    total: str = Field(min_length=1)
    modulus: Number | None = Field(None, gt=0, description="counters wrap at this value (65536)")


class RatioSpec(_Assets):
    """Increments of one counter over increments of another (rework / total, ...)."""

    kind: Literal["ratio"]
    numerator: str = Field(min_length=1)
    denominator: str = Field(min_length=1)
    modulus: Number | None = Field(None, gt=0)


class AvailabilitySpec(_Assets):
    """Time a state tag is in a running state over planned production time."""

    kind: Literal["availability"]
    state: str = Field(min_length=1)
    running: list[Number] = Field(min_length=1, description="state values that mean running")


class PerformanceSpec(_Assets):
    """Ideal cycle time x counted parts / running time (planned time only)."""

    kind: Literal["performance"]
    total: str = Field(min_length=1)
    state: str = Field(min_length=1)
    running: list[Number] = Field(min_length=1)
    ideal_cycle: Duration
    modulus: Number | None = Field(None, gt=0)


class OeeSpec(_Common):
    """availability x performance x quality, each another KPI of this plant."""

    kind: Literal["oee"]
    availability: str
    performance: str
    quality: str


class Bins(StrictModel):
    from_: Number = Field(alias="from")
    to: Number
    width: Number = Field(gt=0)

    @model_validator(mode="after")
    def _size(self) -> Bins:
        if self.to <= self.from_:
            raise ValueError("'to' must be above 'from'")
        if (self.to - self.from_) / self.width > 100_000:
            raise ValueError("at most 100000 bins: widen 'width'")
        return self


class TimeWeightedSpec(_Assets):
    """A statistic of a value tag over time, zero-order hold, bad data left out."""

    kind: Literal["time_weighted"]
    tag: str = Field(min_length=1)
    stat: Stat
    p: Number | None = Field(None, gt=0, lt=100, description="percentile, with stat: percentile")
    bins: Bins | None = Field(None, description="histogram the percentile is read from")
    band: tuple[Number, Number] | None = Field(None, description="[low, high], with stat: outside")


class AlertCountSpec(_Assets):
    """Alerts raised by the chosen rules on the asset's subtree."""

    kind: Literal["alert_count"]
    rules: list[str] = Field(min_length=1, description="rule ids or globs")
    severities: list[Severity] | None = None


KpiSpec = Annotated[
    YieldSpec | RatioSpec | AvailabilitySpec | PerformanceSpec | OeeSpec | TimeWeightedSpec | AlertCountSpec,
    Field(discriminator="kind"),
]
KIND_NAMES = ("yield", "ratio", "availability", "performance", "oee", "time_weighted", "alert_count")


class BreakSpec(StrictModel):
    """A planned break, daily in site time; ``end <= start`` ends the next day."""

    start: ClockTime
    end: ClockTime
    days: list[Weekday] | None = Field(None, description="weekdays it starts on; default: every day")
    name: str | None = None


class ChatterSpec(StrictModel):
    count: int = Field(3, ge=2, description="raises of one alarm ...")
    within: Duration = Field(60 * 10**9, description="... within this long make it chattering")


class VerdictSpec(StrictModel):
    """Upper edges of the average alarm rate per interval for each EEMUA 191 verdict."""

    acceptable: float = Field(1.0, ge=0)
    manageable: float = Field(2.0, ge=0)
    over_demanding: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> VerdictSpec:
        if not self.acceptable <= self.manageable <= self.over_demanding:
            raise ValueError("acceptable <= manageable <= over_demanding")
        return self


class AlarmTargets(StrictModel):
    """Each target is an upper limit: met when the figure is at most the target."""

    avg_per_interval: float | None = Field(1.0, ge=0)
    peak_per_interval: float | None = Field(None, ge=0)
    flood_share: Fraction | None = 0.01
    chattering: int | None = Field(0, ge=0)
    standing: int | None = Field(None, ge=0)
    top10_share: Fraction | None = None
    ack_median: Duration | None = 18 * 3600 * 10**9
    ack_p90: Duration | None = None
    late_ack_share: Fraction | None = 0.05
    unack_cleared: int | None = Field(None, ge=0)


class AlarmSettings(StrictModel):
    """Alarm-management KPIs (ISA-18.2 / EEMUA 191): what counts, and the targets."""

    role: str = Field("operator", description="the role whose assignments make operator positions")
    interval: Duration = Field(600 * 10**9, description="rates are per this interval (10 min)")
    flood: int = Field(10, ge=1, description="more alarms than this in one interval is a flood")
    chatter: ChatterSpec = ChatterSpec()
    standing: Duration = Field(24 * 3600 * 10**9, description="active longer than this is standing")
    late_ack: Duration = Field(48 * 3600 * 10**9, description="acknowledged later than this is late")
    verdict: VerdictSpec = VerdictSpec()
    targets: AlarmTargets = AlarmTargets()

    @field_validator("interval", "standing", "late_ack")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be longer than zero")
        return v


class KpiFileSpec(StrictModel):
    """Top level of a KPI file; the KPIs are validated one by one (see the loader)."""

    kpis: list[object] = Field(default_factory=list)
    shifts: list[str] | None = Field(
        None, description="team shifts that make shift windows; default: the rotations' shifts"
    )
    breaks: list[BreakSpec] = Field(default_factory=list)
    min_coverage: Fraction = 0.9
    parameters: list[str] = Field(default_factory=list, description="tag globs traced as parameters")
    alarms: AlarmSettings | None = None
