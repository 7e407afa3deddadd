"""The shape of a rule file as users write it (SPEC §4), one pydantic model per condition kind.

A rule is flat YAML: its kind is told by which condition key it holds (``above: 80``), so
``RuleSpec`` is a union discriminated by that key: ``SPECS`` maps each key to its model, which
declares the condition's shape next to the keys every rule has (``RuleBase``). The loader
picks the model itself rather than through pydantic's tagged unions: a missing, doubled or
empty condition key is then reported at that key, and error locations stay plain YAML paths.

Pydantic checks structure and single keys. What spans several keys (the hysteresis direction,
an inner band, an expression and its vars) is checked by each kind's ``condition``, which also
compiles the kind into its ``model`` condition, so each problem points at the key causing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar

from pydantic import Field

from plantpulse.alerts import Severity
from plantpulse.rules.expr import FUNCTIONS, ExprError
from plantpulse.rules.expr import parse as parse_expr
from plantpulse.rules.globcheck import TagPattern
from plantpulse.rules.model import (
    Above,
    Below,
    Condition,
    Deviation,
    Expression,
    Kind,
    Outside,
    Rate,
    Stale,
    ValueCondition,
)
from plantpulse.schema import Duration, StrictModel

Number = Annotated[float, Field(allow_inf_nan=False)]
Report = Callable[[tuple[str | int, ...], str], None]
"""``bad(path inside the rule, message)``: records one problem."""


class ClearSpec(StrictModel):
    """Hysteresis on the way back: a looser limit and/or a hold time. Which limit a kind takes
    (one number, an inner band, none) is its own ``condition``'s business."""

    limit: Number | tuple[Number, Number] | None = None
    for_: Duration = Field(0, alias="for")


class RuleBase(StrictModel):
    """The keys of every rule, whatever its condition."""

    kind: ClassVar[Kind]

    id: str = Field(min_length=1, pattern=r"^[^\s]+$")
    description: str | None = None
    tag: TagPattern
    for_: Duration = Field(0, alias="for")
    clear: ClearSpec | None = None
    severity: Severity
    notify: str | None = None
    message: str | None = None

    def condition(self, bad: Report) -> Condition | None:
        """The compiled condition; problems go to ``bad`` (None: nothing to compile)."""
        raise NotImplementedError

    @property
    def clear_limit(self) -> float | tuple[float, float] | None:
        return self.clear.limit if self.clear else None

    def _single_limit(self, bad: Report) -> float | None:
        """``clear.limit`` of a one-sided kind: one number (None when not given)."""
        lim = self.clear_limit
        if isinstance(lim, tuple):
            bad(("clear", "limit"), "clear.limit is a single number for this rule")
            return None
        return lim

    def _no_limit(self, bad: Report) -> None:
        if self.clear_limit is not None:
            bad(("clear", "limit"), f"clear.limit makes no sense for {self.kind} rules")

    def _band(self, bad: Report, cond: ValueCondition) -> ValueCondition:
        """``cond``, with the problem of a given ``clear.limit`` that makes no hysteresis band."""
        if self.clear_limit is not None and (problem := cond.problem()):
            bad(("clear", "limit"), problem)
        return cond


class AboveRule(RuleBase):
    kind: ClassVar[Kind] = "above"
    above: Number

    def condition(self, bad: Report) -> Condition | None:
        lim = self._single_limit(bad)
        return self._band(bad, Above(self.above, self.above if lim is None else lim))


class BelowRule(RuleBase):
    kind: ClassVar[Kind] = "below"
    below: Number

    def condition(self, bad: Report) -> Condition | None:
        lim = self._single_limit(bad)
        return self._band(bad, Below(self.below, self.below if lim is None else lim))


class OutsideRule(RuleBase):
    kind: ClassVar[Kind] = "outside"
    outside: tuple[Number, Number]

    def condition(self, bad: Report) -> Condition | None:
        lo, hi = self.outside
        if lo > hi:
            bad(("outside",), f"outside: [low, high] needs low <= high, got [{lo:g}, {hi:g}]")
        lim = self.clear_limit
        if lim is None:
            return Outside(lo, hi, lo, hi)
        if not isinstance(lim, tuple):
            bad(("clear", "limit"), "clear.limit of an outside rule is an inner band [low, high]")
            return Outside(lo, hi, lo, hi)
        return self._band(bad, Outside(lo, hi, *lim))


class DeviationSpec(StrictModel):
    """``|value - setpoint| > limit``; the setpoint is a number or a tag name (``{asset}`` allowed)."""

    setpoint: Number | str
    limit: Number = Field(ge=0)


class DeviationRule(RuleBase):
    kind: ClassVar[Kind] = "deviation"
    deviation: DeviationSpec

    def condition(self, bad: Report) -> Condition | None:
        dev = self.deviation
        lim = self._single_limit(bad)
        sp = dev.setpoint
        if isinstance(sp, str) and not sp.strip():
            bad(("deviation", "setpoint"), "setpoint is a number or a tag name")
        setpoint = sp if isinstance(sp, str) else float(sp)
        return self._band(bad, Deviation(dev.limit, dev.limit if lim is None else lim, setpoint))


class RateSpec(StrictModel):
    """Change between consecutive samples, scaled to ``per``; exactly one of above/below."""

    per: Duration = 1_000_000_000
    above: Number | None = None
    below: Number | None = None


class RateRule(RuleBase):
    kind: ClassVar[Kind] = "rate"
    rate: RateSpec

    def condition(self, bad: Report) -> Condition | None:
        r = self.rate
        lim = self._single_limit(bad)
        if (r.above is None) == (r.below is None):
            bad(("rate",), "rate needs exactly one of above or below")
            return None
        if r.per <= 0:
            bad(("rate", "per"), "rate.per must be longer than zero")
        x = r.above if r.above is not None else r.below
        assert x is not None
        return self._band(bad, Rate(r.above is not None, x, x if lim is None else lim, r.per))


class StaleRule(RuleBase):
    kind: ClassVar[Kind] = "stale"
    stale: Duration

    def condition(self, bad: Report) -> Condition | None:
        self._no_limit(bad)
        if self.clear is not None and self.clear.for_:
            bad(("clear", "for"), "a stale alert clears at the next sample; clear.for makes no sense here")
        if self.stale <= 0:
            bad(("stale",), "stale needs a duration longer than zero")
        return Stale(self.stale)


class ExprRule(RuleBase):
    kind: ClassVar[Kind] = "expr"
    expr: str
    vars: dict[str, str] | None = None

    def condition(self, bad: Report) -> Condition | None:
        self._no_limit(bad)
        try:
            compiled = parse_expr(self.expr)
        except ExprError as e:
            bad(("expr",), f"expr column {e.col}: {e}")
            return None
        variables = self.vars or {}
        for name in variables:
            if not name.isidentifier() or name in FUNCTIONS or name == "value":
                bad(("vars", name), f"{name!r} cannot be a variable name")
        inputs: list[str] = []
        slots: list[tuple[str, int]] = []
        for name in compiled.names:
            if name == "value":
                slots.append((name, 0))
                continue
            inputs.append(variables.get(name, "{asset}/" + name))
            slots.append((name, len(inputs)))
        return Expression(compiled, tuple(slots), tuple(inputs))


RuleSpec = AboveRule | BelowRule | OutsideRule | DeviationRule | RateRule | StaleRule | ExprRule
SPECS: dict[str, type[RuleSpec]] = {
    s.kind: s for s in (AboveRule, BelowRule, OutsideRule, DeviationRule, RateRule, StaleRule, ExprRule)
}
CONDITION_KEYS = tuple(SPECS)
KIND_KEYS = {
    key: s.kind
    for s in SPECS.values()
    for key in s.model_fields
    if key not in RuleBase.model_fields and key != s.kind
}
"""Keys that only one kind takes besides its condition key (``vars``: expr)."""


class RuleFileSpec(StrictModel):
    """Top level of a rule file; rules are validated one by one (see the loader)."""

    rules: list[object] = Field(default_factory=list)
