"""The ``approvals:`` section of ``plant.yaml`` (docs/approvals.md).

    approvals:
      chains:
        - files: [rules/*.yaml]                  # rule or KPI files, globs relative to plant.yaml
          levels: [quality_engineer, team_lead, workshop_director]
          remind: 4h                             # remind a level's people every 4 h without an answer
          escalate: {after: 1d, to: [workshop_director]}
      emergency: {roles: [workshop_director], changes: disable}
      backtest_days: 7

``approvals: off`` (also the default when the section is left out) keeps the rule and KPI files
on disk as the live ones, exactly as before. Names are cross-checked against the team here
(``problems``), so a misspelt role is a ``FILE:LINE:COL`` problem before anything starts, never
a chain nobody can complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from plantpulse.errors import Problem
from plantpulse.people.schema import TeamConfig
from plantpulse.rules.model import glob_regex
from plantpulse.schema import Duration, StrictModel

__all__ = ["ApprovalsConfig", "ApprovalsSetting", "ChainSpec", "EmergencySpec", "EscalateSpec", "problems"]

DAY = 86400 * 10**9


class EscalateSpec(StrictModel):
    after: Duration = Field(description="a level without an answer this long is escalated, once")
    to: list[str] = Field(min_length=1, description="roles and/or people told that the level is waiting")


class ChainSpec(StrictModel):
    files: list[str] = Field(min_length=1, description="rule or KPI files (globs) relative to plant.yaml")
    levels: list[str] = Field(min_length=1, description="one role per level, approved in this order")
    remind: Duration | None = Field(
        4 * 3600 * 10**9, description="remind the waiting level this often; null: never"
    )
    escalate: EscalateSpec | None = None

    @field_validator("remind")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("remind must be longer than zero (null: no reminders)")
        return v

    def matches(self, file: str) -> bool:
        """``file`` is relative to plant.yaml, ``/``-separated."""
        return any(glob_regex(p.strip("/").removeprefix("./")).match(file) for p in self.files)


class EmergencySpec(StrictModel):
    roles: list[str] = Field(min_length=1, description="who may put a change live at once")
    changes: Literal["disable", "any"] = Field(
        "disable", description="disable: an emergency change may only remove rules or KPIs; any: anything"
    )


class ApprovalsConfig(StrictModel):
    chains: list[ChainSpec] = Field(min_length=1, description="the first chain whose files match wins")
    emergency: EmergencySpec | None = None
    backtest_days: int = Field(7, ge=1, le=366, description="default of rules propose --days")
    poll: Duration = Field(2 * 10**9, description="how often a running pipeline looks for approved versions")

    def chain_for(self, file: str) -> tuple[int, ChainSpec] | None:
        for i, c in enumerate(self.chains):
            if c.matches(file):
                return i, c
        return None


def _off(value: Any) -> Any:
    # YAML 1.1 reads an unquoted ``off`` as False
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if value is True:
        raise ValueError("write the chains (docs/approvals.md) or off")
    return value


ApprovalsSetting = Annotated[ApprovalsConfig | None, BeforeValidator(_off)]
"""``approvals:`` in plant.yaml: ``off`` (default) or the chains."""


def relative(file: Path, base: Path) -> str:
    """A rule or KPI file as the log names it: relative to plant.yaml's directory, ``/``-separated."""
    try:
        return file.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return file.resolve().as_posix()


def problems(
    cfg: ApprovalsConfig,
    team: TeamConfig,
    files: Sequence[str],
    where: Any,
) -> list[Problem]:
    """Names the team does not know, levels nobody can approve, and plant rule/KPI files no
    chain covers; ``where(path, what)`` makes the Problem at that path under ``approvals``."""
    out: list[Problem] = []
    roles, people = team.roles, team.people
    holders = {r: [n for n, p in people.items() if r in p.roles] for r in roles}
    for i, c in enumerate(cfg.chains):
        for j, role in enumerate(c.levels):
            if role not in roles:
                out.append(where(("chains", i, "levels", j), f"unknown role {role!r}"))
            elif not holders.get(role) and not _assigned(team, role):
                out.append(where(("chains", i, "levels", j), f"nobody holds the role {role!r}"))
        if c.escalate is not None:
            for j, who in enumerate(c.escalate.to):
                if who not in roles and who not in people:
                    out.append(
                        where(("chains", i, "escalate", "to", j), f"{who!r} is neither a role nor a person")
                    )
    if cfg.emergency is not None:
        for j, role in enumerate(cfg.emergency.roles):
            if role not in roles:
                out.append(where(("emergency", "roles", j), f"unknown role {role!r}"))
    for f in files:
        if cfg.chain_for(f) is None:
            out.append(where(("chains",), f"{f} matches no chain: every rule and KPI file needs one"))
    return out


def _assigned(team: TeamConfig, role: str) -> bool:
    return any(role in a.roles and a.people for a in team.assignments)
