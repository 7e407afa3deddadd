"""A validated, compiled rule: what the engine needs, nothing about YAML.

Every condition kind reduces to two vectorised predicates over its inputs at each evaluation
point: ``fire`` (the firing condition holds) and ``clear`` (the clear condition holds; without
``clear.limit`` it is simply "not fire"). Where neither holds the point is inside the
hysteresis band. The engine never looks at the kind beyond this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule. ``inputs`` are the tag-name templates of slots 1.. (slot 0 is the matched tag)."""

    id: str
    tag: str
    kind: Kind
    severity: Severity
    for_ns: int = 0
    clear_for_ns: int = 0
    message: str = ""
    description: str | None = None
    notify: str | None = None
    threshold: float = 0.0  # above / below / rate; also the deviation limit
    clear_threshold: float = 0.0
    low: float = 0.0  # outside
    high: float = 0.0
    clear_low: float = 0.0
    clear_high: float = 0.0
    setpoint: float | None = None  # deviation with a constant setpoint
    direction: Literal["above", "below"] = "above"  # rate
    per_ns: int = 1_000_000_000
    stale_ns: int = 0
    expr: Expr | None = None
    expr_slots: tuple[tuple[str, int], ...] = ()  # expression name -> slot
    inputs: tuple[str, ...] = ()
    source: str = ""
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, name: str) -> bool:
        if self._regex is None:
            return name == self.tag
        return self._regex.match(name) is not None

    def input_names(self, tag: str) -> list[str]:
        """Tag names read by the stream of ``tag``: the tag itself, then setpoint / expr inputs."""
        asset = asset_of(tag)
        return [tag] + [t.replace("{asset}", asset) for t in self.inputs]

    # --- the condition ------------------------------------------------------------------
    def subject(self, cols: list[F64], rate: F64 | None) -> F64:
        """The number compared with the limits: value, value - setpoint, or the rate."""
        if self.kind == "deviation":
            sp = cols[1] if self.setpoint is None else self.setpoint
            return cols[0] - sp
        if self.kind == "rate":
            assert rate is not None
            return rate
        return cols[0]

    def condition(self, cols: list[F64], rate: F64 | None) -> tuple[B, B]:
        """(fire, clear) at every evaluation point; only meaningful where all inputs are known."""
        with np.errstate(invalid="ignore"):
            if self.kind == "expr":
                assert self.expr is not None
                env = {name: cols[slot] for name, slot in self.expr_slots}
                fire = self.expr(env)
                return fire, ~fire
            x = self.subject(cols, rate)
            if self.kind == "outside":
                return (x < self.low) | (x > self.high), (x >= self.clear_low) & (x <= self.clear_high)
            if self.kind == "deviation":
                ax = np.abs(x)
                return ax > self.threshold, ax <= self.clear_threshold
            up = self.kind == "above" or (self.kind == "rate" and self.direction == "above")
            if up:
                return x > self.threshold, x <= self.clear_threshold
            return x < self.threshold, x >= self.clear_threshold

    # --- messages -------------------------------------------------------------------------
    def template_values(
        self, tag: str, value: float, setpoint: float | None, rate: float | None
    ) -> dict[str, float | str | None]:
        vals: dict[str, float | str | None] = {
            "value": value,
            "tag": tag,
            "asset": asset_of(tag),
            "rule": self.id,
            "severity": self.severity,
            "duration": format_duration(self.for_ns),
        }
        if self.kind in ("above", "below"):
            vals["threshold"] = vals["limit"] = self.threshold
        elif self.kind == "outside":
            vals["low"], vals["high"] = self.low, self.high
        elif self.kind == "deviation":
            sp = self.setpoint if self.setpoint is not None else setpoint
            vals["setpoint"] = sp
            vals["limit"] = self.threshold
            vals["deviation"] = None if sp is None else value - sp
        elif self.kind == "rate":
            vals["threshold"] = vals["limit"] = self.threshold
            vals["rate"] = rate
            vals["per"] = format_duration(self.per_ns)
        elif self.kind == "stale":
            vals["stale"] = format_duration(self.stale_ns)
        else:
            vals["expr"] = self.expr.text if self.expr else ""
        return vals

    def render(self, tag: str, value: float, setpoint: float | None = None, rate: float | None = None) -> str:
        return template.render(self.message, self.template_values(tag, value, setpoint, rate))


def default_message(kind: Kind, has_for: bool) -> str:
    """The message used when a rule has none; written once here so every kind reads alike."""
    held = " for {duration}" if has_for else ""
    return {
        "above": "{tag} = {value:g} above {threshold:g}" + held,
        "below": "{tag} = {value:g} below {threshold:g}" + held,
        "outside": "{tag} = {value:g} outside [{low:g}, {high:g}]" + held,
        "deviation": "{tag} = {value:g} deviates {deviation:+g} from setpoint {setpoint:g} (limit {limit:g})"
        + held,
        "rate": "{tag} changes {rate:+g} per {per} (limit {threshold:g})" + held,
        "stale": "{tag}: no sample for {stale}",
        "expr": "{tag}: {expr}" + held,
    }[kind]
