"""The shape of a rule file as users write it (SPEC §4), checked by pydantic.

Only structure and single-key values are checked here; rules that need several keys at once
(exactly one condition, hysteresis direction, expression and message templates) are checked
by the loader so each problem can point at the key that causes it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from plantpulse.alerts import Severity
from plantpulse.rules.globcheck import TagPattern
from plantpulse.schema import Duration, StrictModel

Number = Annotated[float, Field(allow_inf_nan=False)]

CONDITION_KEYS = ("above", "below", "outside", "deviation", "rate", "stale", "expr")


class DeviationSpec(StrictModel):
    """``|value - setpoint| > limit``; the setpoint is a number or a tag name (``{asset}`` allowed)."""

    setpoint: Number | str
    limit: Number = Field(ge=0)


class RateSpec(StrictModel):
    """Change between consecutive samples, scaled to ``per``; exactly one of above/below."""

    per: Duration = 1_000_000_000
    above: Number | None = None
    below: Number | None = None


class ClearSpec(StrictModel):
    """Hysteresis on the way back: a looser limit and/or a hold time."""

    limit: Number | tuple[Number, Number] | None = None
    for_: Duration = Field(0, alias="for")


class RuleSpec(StrictModel):
    id: str = Field(min_length=1, pattern=r"^[^\s]+$")
    description: str | None = None
    tag: TagPattern
    above: Number | None = None
    below: Number | None = None
    outside: tuple[Number, Number] | None = None
    deviation: DeviationSpec | None = None
    rate: RateSpec | None = None
    stale: Duration | None = None
    expr: str | None = None
    vars: dict[str, str] | None = None
    for_: Duration = Field(0, alias="for")
    clear: ClearSpec | None = None
    severity: Severity
    notify: str | None = None
    message: str | None = None


class RuleFileSpec(StrictModel):
    """Top level of a rule file; rules are validated one by one (see the loader)."""

    rules: list[object] = Field(default_factory=list)
