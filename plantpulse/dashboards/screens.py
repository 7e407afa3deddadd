"""The ``boards:`` section of ``plant.yaml``: the shop-floor screens the built-in board serves.

Each screen picks assets (a path or glob names an asset and everything below it, so
``line1`` is the whole line), optionally narrows the key values to some tags, and names the
KPIs it shows. ``check_boards`` cross-checks every name against the plant's tags and KPI
files at ``FILE:LINE:COL`` (a screen that silently shows nothing is a blind spot on a TV).
Without ``boards:`` the board serves ``default_screens``: one screen with everything.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cached_property

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from plantpulse.errors import Problem
from plantpulse.people.schema import Language
from plantpulse.rules.model import glob_regex, is_glob
from plantpulse.schema import Duration, StrictModel
from plantpulse.yamlsrc import Document

NS_PER_MS = 1_000_000


class ScreenConfig(StrictModel):
    """One screen, served at ``/board/<name>``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", description="URL name: /board/<name>")
    title: str | None = Field(None, description="shown in the header; default: the name")
    language: Language | None = Field(None, description="zh or en; default: the team's language")
    refresh: Duration = Field(250 * NS_PER_MS, description="at most one update this often (100ms..60s)")
    assets: list[str] = Field(
        default_factory=list, description="asset paths or globs, each with its subtree; default: all"
    )
    tags: list[str] = Field(
        default_factory=list,
        description="tag globs of the key values shown; default: every tag of the assets",
    )
    kpis: list[str] | None = Field(None, description="KPI ids shown as tiles; default: all of these assets")
    acknowledge: bool = Field(False, description="people may acknowledge and shelve here with their PIN")

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, v: int) -> int:
        if not 100 * NS_PER_MS <= v <= 60_000 * NS_PER_MS:
            raise ValueError("refresh is between 100ms and 60s")
        return v

    @field_validator("assets", "tags")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if not pattern.strip("/ "):
                raise ValueError("an empty asset or tag name; leave the list out to show everything")
            try:
                glob_regex(pattern)
            except (ValueError, re.error) as e:
                raise ValueError(f"invalid glob {pattern!r}: {e}") from None
        return [p.strip("/ ") for p in v]


class BoardsConfig(StrictModel):
    default: str | None = Field(None, description="the screen at /; default: the first")
    trend: Duration = Field(600_000 * NS_PER_MS, description="span of the sparklines (60 points)")
    stale_after: Duration = Field(
        10_000 * NS_PER_MS, description="a value older than this is shown stale, and the feed too"
    )
    screens: list[ScreenConfig] = Field(min_length=1)

    @field_validator("trend")
    @classmethod
    def _trend(cls, v: int) -> int:
        if not 60_000 * NS_PER_MS <= v <= 24 * 3_600_000 * NS_PER_MS:
            raise ValueError("trend is between 1m and 24h")
        return v

    @field_validator("stale_after")
    @classmethod
    def _stale(cls, v: int) -> int:
        if v < 1000 * NS_PER_MS:
            raise ValueError("stale_after is at least 1s")
        return v

    @model_validator(mode="after")
    def _names(self) -> BoardsConfig:
        errs: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for i, s in enumerate(self.screens):
            if s.name in seen:
                errs.append((("screens", i, "name"), f"screen name {s.name!r} is used twice"))
            seen.add(s.name)
        if self.default is not None and self.default not in seen:
            errs.append((("default",), f"no screen named {self.default!r}"))
        if errs:
            raise ValidationError.from_exception_data(
                "BoardsConfig",
                [InitErrorDetails(type=PydanticCustomError("name", m), loc=at, input=None) for at, m in errs],
            )
        return self

    @property
    def default_screen(self) -> str:
        return self.default or self.screens[0].name


def default_boards(acknowledge: bool) -> BoardsConfig:
    """Without ``boards:``: one screen ``all`` with every asset, tag and KPI."""
    return BoardsConfig(screens=[ScreenConfig(name="all", acknowledge=acknowledge)])


@dataclass(frozen=True)
class Selection:
    """Which tags, assets and KPIs one screen shows; matching only, no state."""

    assets: tuple[str, ...]
    tags: tuple[str, ...]
    kpis: frozenset[str] | None

    @cached_property
    def _asset_res(self) -> list[re.Pattern[str]]:
        return [glob_regex(p) for p in self.assets]

    @cached_property
    def _tag_res(self) -> list[re.Pattern[str]]:
        return [glob_regex(p) for p in self.tags]

    def asset(self, path: str) -> bool:
        """``path`` or one of its ancestors is selected (the whole site with no ``assets``)."""
        return not self.assets or any(r.fullmatch(p) for r in self._asset_res for p in _ancestors(path))

    def tag(self, name: str) -> bool:
        if not self.asset(name.rpartition("/")[0]):
            return False
        return not self.tags or any(r.fullmatch(name) for r in self._tag_res)

    def kpi(self, kpi: str, asset: str) -> bool:
        if self.kpis is not None and kpi not in self.kpis:
            return False
        return not self.assets if asset in ("", "*") else self.asset(asset)

    @classmethod
    def of(cls, screen: ScreenConfig) -> Selection:
        return cls(
            tuple(screen.assets), tuple(screen.tags), None if screen.kpis is None else frozenset(screen.kpis)
        )


def check_boards(
    boards: BoardsConfig,
    doc: Document,
    tag_names: Iterable[str],
    kpi_ids: Collection[str] | None,
    *,
    tags_known: bool = True,
) -> list[Problem]:
    """Every asset, tag and KPI a screen names must exist: at its line and column.

    ``tags_known`` is False when some source discovers its tags at run time (MQTT), so names
    that match no configured tag cannot be refused; ``kpi_ids`` None: the KPI files did not
    load (their problems are reported already), so KPI names are not checked."""
    names = list(tag_names)
    assets = sorted({a for t in names for a in _ancestors(t.rpartition("/")[0])})
    out: list[Problem] = []
    for i, screen in enumerate(boards.screens):
        where = f"boards.screens.{i} ({screen.name})"
        sel = Selection.of(screen)
        if tags_known:
            for j, pattern in enumerate(screen.assets):
                r = glob_regex(pattern)
                if not any(r.fullmatch(a) for a in assets):
                    what = "matches no asset" if is_glob(pattern) else "is no asset"
                    out.append(
                        doc.problem(("boards", "screens", i, "assets", j), f"{pattern!r} {what}", where)
                    )
            for j, pattern in enumerate(screen.tags):
                r = glob_regex(pattern)
                if not any(r.fullmatch(t) and sel.asset(t.rpartition("/")[0]) for t in names):
                    what = f"{pattern!r} matches no tag of the screen's assets"
                    out.append(doc.problem(("boards", "screens", i, "tags", j), what, where))
        for j, kpi in enumerate(screen.kpis or []):
            if kpi_ids is not None and kpi not in kpi_ids:
                known = ", ".join(sorted(kpi_ids)) or "none"
                what = f"unknown KPI {kpi!r} (known: {known})"
                out.append(doc.problem(("boards", "screens", i, "kpis", j), what, where))
    return out


def _ancestors(asset: str) -> list[str]:
    parts = asset.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


__all__ = ["BoardsConfig", "ScreenConfig", "Selection", "check_boards", "default_boards"]
