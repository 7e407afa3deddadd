"""``api.ready``: what ``/api/health/ready`` requires (docs/operations.md, "Readiness")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from plantpulse.schema import StrictModel

__all__ = ["ReadyConfig"]


class ReadyConfig(StrictModel):
    spool_backlog: int | None = Field(
        None,
        ge=0,
        description="bytes in the spool not yet in the store above which the process is not ready; "
        "default: a quarter of store.spool.max_bytes",
    )
    sources: Literal["all", "any", "ignore"] = Field(
        "all", description="which sources must be available: all of them, at least one, or none"
    )
