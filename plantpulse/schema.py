"""Building blocks shared by every pydantic schema (config, rules, scenarios, roster)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from plantpulse.timefmt import format_duration, parse_duration


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key must never become a silent blind spot."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: Any) -> int:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    raise ValueError("a duration is written like 500ms, 3s, 2m or 1h")


Duration = Annotated[int, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)]
"""A duration as users write it (``500ms``, ``3s``, ``2m``, ``1h``), held as int nanoseconds."""
