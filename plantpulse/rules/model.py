"""A validated, compiled rule: what the engine needs, nothing about YAML.

A rule's condition is one of the kinds below, each its own class (the ``Condition`` union,
told apart by ``kind``). A value condition judges its inputs at evaluation points into two
predicates: ``fire`` (the firing condition holds) and ``clear`` (the clear condition holds:
back inside ``clear.limit``, or simply "not fire" without one); where neither holds the point
is inside the hysteresis band. Next to its predicates each kind says when its clear limit
would not make a band (``problem``): the loader reports that, and the engine's fast path
relies on fire and clear never holding together when there is none. So how a kind fires and
clears is written once, here. The predicates are plain arithmetic and comparisons: they
judge a batch (numpy arrays; the engine calls them under ``np.errstate(invalid="ignore")``,
as ``inf - inf`` is NaN, which compares false) as well as a single point (floats, as the
naive reference of the tests does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from plantpulse.alerts import Severity
from plantpulse.rules import template
from plantpulse.rules.expr import Expr
from plantpulse.samples import asset_of
from plantpulse.timefmt import format_duration

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Kind = Literal["above", "below", "outside", "deviation", "rate", "stale", "expr"]
Fields = dict[str, float | str | None]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay inside one path segment, ``**`` crosses ``/``, ``[abc]`` is a class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def one_sided(x: F64, up: bool, limit: float, clear: float) -> tuple[B, B]:
    """(fire, clear) of a limit crossed one way: beyond ``limit`` (above it when ``up``) fires,
    at or back inside ``clear`` clears."""
    if up:
        return x > limit, x <= clear
    return x < limit, x >= clear


def one_sided_problem(up: bool, limit: float, clear: float) -> str | None:
    """Why ``clear`` makes no band with ``limit``: it would clear where the condition fires."""
    if up and clear > limit:
        return f"clear.limit {clear:g} must be <= {limit:g} (it clears when the value is back at or below it)"
    if not up and clear < limit:
        return f"clear.limit {clear:g} must be >= {limit:g} (it clears when the value is back at or above it)"
    return None


@dataclass(frozen=True, slots=True)
class _Level:
    """A limit on the value itself, crossed one way (``up``: above it)."""

    limit: float
    clear_limit: float
    kind: ClassVar[Kind]
    up: ClassVar[bool]
    inputs: ClassVar[tuple[str, ...]] = ()

    def judge(self, cols: Sequence[F64], rate: F64 | None) -> tuple[B, B]:
        return one_sided(cols[0], self.up, self.limit, self.clear_limit)

    def problem(self) -> str | None:
        return one_sided_problem(self.up, self.limit, self.clear_limit)

    def fields(self, value: float, aux: float | None) -> Fields:
        return {"threshold": self.limit, "limit": self.limit}


@dataclass(frozen=True, slots=True)
class Above(_Level):
    """``above: X``: fires when ``value > X``."""

    kind: ClassVar[Kind] = "above"
    up: ClassVar[bool] = True
    default_message: ClassVar[str] = "{tag} = {value:g} above {threshold:g}"


@dataclass(frozen=True, slots=True)
class Below(_Level):
    """``below: X``: fires when ``value < X``."""

    kind: ClassVar[Kind] = "below"
    up: ClassVar[bool] = False
    default_message: ClassVar[str] = "{tag} = {value:g} below {threshold:g}"


@dataclass(frozen=True, slots=True)
class Outside:
    """``outside: [low, high]``: fires outside the band; clears inside the inner clear band."""

    low: float
    high: float
    clear_low: float
    clear_high: float
    kind: ClassVar[Kind] = "outside"
    inputs: ClassVar[tuple[str, ...]] = ()
    default_message: ClassVar[str] = "{tag} = {value:g} outside [{low:g}, {high:g}]"

    def judge(self, cols: Sequence[F64], rate: F64 | None) -> tuple[B, B]:
        x = cols[0]
        return (x < self.low) | (x > self.high), (x >= self.clear_low) & (x <= self.clear_high)

    def problem(self) -> str | None:
        if self.low <= self.clear_low <= self.clear_high <= self.high:
            return None
        band, outer = f"[{self.clear_low:g}, {self.clear_high:g}]", f"[{self.low:g}, {self.high:g}]"
        return f"clear.limit {band} must be an inner band of {outer}"

    def fields(self, value: float, aux: float | None) -> Fields:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Deviation:
    """``deviation: {setpoint, limit}``: fires when ``|value - setpoint| > limit``. A setpoint
    given as a tag name is read as input slot 1, and its held value is ``aux`` in messages."""

    limit: float
    clear_limit: float
    setpoint: float | str
    kind: ClassVar[Kind] = "deviation"
    default_message: ClassVar[str] = (
        "{tag} = {value:g} deviates {deviation:+g} from setpoint {setpoint:g} (limit {limit:g})"
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.setpoint,) if isinstance(self.setpoint, str) else ()

    def judge(self, cols: Sequence[F64], rate: F64 | None) -> tuple[B, B]:
        sp = self.setpoint if isinstance(self.setpoint, float) else cols[1]
        return one_sided(abs(cols[0] - sp), True, self.limit, self.clear_limit)

    def problem(self) -> str | None:
        if 0 <= self.clear_limit <= self.limit:
            return None
        return f"clear.limit {self.clear_limit:g} must be between 0 and the limit {self.limit:g}"

    def fields(self, value: float, aux: float | None) -> Fields:
        sp = self.setpoint if isinstance(self.setpoint, float) else aux
        return {"setpoint": sp, "limit": self.limit, "deviation": None if sp is None else value - sp}


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate: {per, above|below}``: the change between consecutive samples of the tag, scaled
    to ``per``, crosses the limit (``up``: above it); the rate is ``aux`` in messages."""

    up: bool
    limit: float
    clear_limit: float
    per_ns: int
    kind: ClassVar[Kind] = "rate"
    inputs: ClassVar[tuple[str, ...]] = ()
    default_message: ClassVar[str] = "{tag} changes {rate:+g} per {per} (limit {threshold:g})"

    def judge(self, cols: Sequence[F64], rate: F64 | None) -> tuple[B, B]:
        assert rate is not None
        return one_sided(rate, self.up, self.limit, self.clear_limit)

    def problem(self) -> str | None:
        return one_sided_problem(self.up, self.limit, self.clear_limit)

    def fields(self, value: float, aux: float | None) -> Fields:
        per = format_duration(self.per_ns)
        return {"threshold": self.limit, "limit": self.limit, "rate": aux, "per": per}


@dataclass(frozen=True, slots=True)
class Expression:
    """``expr: "..."``: fires while the expression holds, clears when it does not. ``slots``
    maps each name of the expression to its input slot (0: the matched tag)."""

    expr: Expr
    slots: tuple[tuple[str, int], ...]
    inputs: tuple[str, ...]
    kind: ClassVar[Kind] = "expr"
    default_message: ClassVar[str] = "{tag}: {expr}"

    def judge(self, cols: Sequence[F64], rate: F64 | None) -> tuple[B, B]:
        fire = self.expr({name: cols[slot] for name, slot in self.slots})
        return fire, ~fire

    def problem(self) -> str | None:
        return None

    def fields(self, value: float, aux: float | None) -> Fields:
        return {"expr": self.expr.text}


@dataclass(frozen=True, slots=True)
class Stale:
    """``stale: D``: no sample of any quality for D. It has no predicate to judge at a point:
    it comes true between samples (lifecycle.silence; stale.py)."""

    stale_ns: int
    kind: ClassVar[Kind] = "stale"
    inputs: ClassVar[tuple[str, ...]] = ()
    default_message: ClassVar[str] = "{tag}: no sample for {stale}"

    def problem(self) -> str | None:
        return None

    def fields(self, value: float, aux: float | None) -> Fields:
        return {"stale": format_duration(self.stale_ns)}


ValueCondition = Above | Below | Outside | Deviation | Rate | Expression
"""The kinds judged at evaluation points (condition.py)."""
Condition = ValueCondition | Stale


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule: which tags, its condition, how long each side must hold, what to say."""

    id: str
    tag: str
    condition: Condition
    severity: Severity
    for_ns: int = 0
    clear_for_ns: int = 0
    message: str = ""
    description: str | None = None
    notify: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @property
    def kind(self) -> Kind:
        return self.condition.kind

    @property
    def inputs(self) -> tuple[str, ...]:
        """Tag-name templates of input slots 1.. (slot 0 is the matched tag)."""
        return self.condition.inputs

    def matches(self, name: str) -> bool:
        if self._regex is None:
            return name == self.tag
        return self._regex.match(name) is not None

    def input_names(self, tag: str) -> list[str]:
        """Tag names read by the stream of ``tag``: the tag itself, then setpoint / expr inputs."""
        asset = asset_of(tag)
        return [tag] + [t.replace("{asset}", asset) for t in self.inputs]

    @property
    def held_ns(self) -> int:
        """How long the rule's condition has held when it fires: its ``for``, and for a stale
        rule the silence before it too (``stale + for``: a stale rule without ``for`` fires
        after ``stale`` without a sample, not after nothing)."""
        if isinstance(self.condition, Stale):
            return self.condition.stale_ns + self.for_ns
        return self.for_ns

    def template_values(self, tag: str, value: float, aux: float | None = None) -> Fields:
        """The message fields; ``aux`` is the held setpoint tag or the rate (see the kinds)."""
        return {
            "value": value,
            "tag": tag,
            "asset": asset_of(tag),
            "rule": self.id,
            "severity": self.severity,
            "duration": format_duration(self.held_ns),
            **self.condition.fields(value, aux),
        }

    def render(self, tag: str, value: float, aux: float | None = None) -> str:
        return template.render(self.message, self.template_values(tag, value, aux))


def default_message(condition: Condition, has_for: bool) -> str:
    """The message used when a rule has none; every kind reads alike."""
    held = " for {duration}" if has_for and not isinstance(condition, Stale) else ""
    return condition.default_message + held
