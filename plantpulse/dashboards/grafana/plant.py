"""What the dashboards need to know about a plant, computed once from its config and rules.

Pure: config and compiled rules in, plain frozen data out. The asset tree is the roster's
(``Roster.ancestors``: explicit ``team.assets`` parents first, else the tag path), so a line
here is exactly what the roster calls the level below the site, and an operator position
is what the KPI issue calls one: the assets one ``operator`` assignment covers (its subtree,
minus the subtrees of more specific operator assignments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from plantpulse.config import PlantConfig
from plantpulse.dashboards.grafana.sqltext import glob_to_regex
from plantpulse.people.roster import Roster
from plantpulse.people.schema import ROOT, WEEKDAYS, norm_asset
from plantpulse.rules.model import Above, Below, Deviation, Outside, Rule
from plantpulse.samples import asset_of

SITE_POSITION = "*"
"""The label of an operator position assigned to the whole site (``asset: "*"``)."""
UNASSIGNED = "(unassigned)"
"""Alerts on assets no operator assignment covers are counted under this position."""


@dataclass(frozen=True, slots=True)
class Limit:
    """The limits one rule draws on the trend of every tag its glob matches.

    ``low``/``high`` are absolute for above/below/outside, offsets from the setpoint for a
    deviation (``-limit``/``+limit``); the setpoint is ``setpoint`` or the tag ``setpoint_tag``
    (a template with ``{asset}``, the matched tag's asset)."""

    rule: str
    pattern: str  # the rule's tag glob as a PostgreSQL regular expression
    low: float | None
    high: float | None
    setpoint: float | None = None
    setpoint_tag: str | None = None


@dataclass(frozen=True, slots=True)
class RotationDays:
    """Which crew a rotation puts on a shift: ``pattern[(day - start) mod len]``, ``-`` nobody."""

    rotation: str
    start: date
    pattern: str


@dataclass(frozen=True, slots=True)
class ShiftSpec:
    name: str
    start: int  # minutes after local midnight
    days: tuple[int, ...] | None  # ISO weekdays 1..7 the shift starts on; None: every day
    rotations: tuple[RotationDays, ...]


@dataclass(frozen=True, slots=True)
class PlantView:
    site: str
    timezone: str
    lines: tuple[str, ...]
    assets: dict[str, tuple[str, ...]]  # line -> its assets (the line first, then its subtree)
    position_roots: tuple[str, ...]  # operator assignment paths, most specific first
    position_exceptions: dict[str, str]  # asset -> position where the path prefix would be wrong
    limits: tuple[Limit, ...]
    shifts: tuple[ShiftSpec, ...]

    @property
    def positions(self) -> tuple[str, ...]:
        return (*(position_label(r) for r in sorted(self.position_roots)), UNASSIGNED)

    def line_assets(self, line: str) -> tuple[str, ...]:
        return self.assets.get(line, (line,))


def position_label(root: str) -> str:
    return root or SITE_POSITION


def limits_of(rule: Rule) -> Limit | None:
    """The drawable limits of a rule; rate, stale and expr rules have none on the value axis."""
    pattern = glob_to_regex(rule.tag)
    c = rule.condition
    if isinstance(c, Above):
        return Limit(rule.id, pattern, None, c.limit)
    if isinstance(c, Below):
        return Limit(rule.id, pattern, c.limit, None)
    if isinstance(c, Outside):
        return Limit(rule.id, pattern, c.low, c.high)
    if isinstance(c, Deviation):
        if isinstance(c.setpoint, str):
            return Limit(rule.id, pattern, -c.limit, c.limit, None, c.setpoint)
        return Limit(rule.id, pattern, -c.limit, c.limit, c.setpoint, None)
    return None


def _prefix_position(asset: str, roots: Sequence[str]) -> str | None:
    for root in roots:  # most specific (longest) first
        if root in (ROOT, asset) or asset.startswith(root + "/"):
            return root
    return None


def plant_view(plant: PlantConfig, rules: Sequence[Rule], operator_role: str = "operator") -> PlantView:
    team = plant.team
    roster = Roster(team, plant.site.timezone)
    known: set[str] = set()
    for src in plant.sources:
        known.update(asset_of(t.name) for t in src.tags)
    for parent, children in team.assets.items():
        known.add(norm_asset(parent))
        known.update(norm_asset(c) for c in children)
    known.update(a.path for a in team.assignments)
    nodes: set[str] = set()
    for asset in known - {ROOT}:
        nodes.update(roster.ancestors(asset)[:-1])  # every level up to, not including, the site
    line_of = {node: roster.ancestors(node)[-2] for node in nodes}
    lines = tuple(sorted(set(line_of.values())))
    assets = {
        line: (line, *sorted(n for n, ln in line_of.items() if ln == line and n != line)) for line in lines
    }
    roots = sorted({a.path for a in team.assignments if operator_role in a.roles}, key=lambda r: (-len(r), r))
    exceptions: dict[str, str] = {}
    for node in sorted(nodes):
        by_roster = next((lv for lv in roster.ancestors(node) if lv in roots), None)
        if by_roster != _prefix_position(node, roots):
            exceptions[node] = UNASSIGNED if by_roster is None else position_label(by_roster)
    limits = tuple(lim for lim in (limits_of(r) for r in rules) if lim is not None)
    shifts = []
    for name, shift in team.shifts.items():
        rots = tuple(
            RotationDays(rname, rot.start.date(), pattern)
            for rname, rot in team.rotations.items()
            for sname, pattern in rot.days().items()
            if sname == name
        )
        days = None if shift.days is None else tuple(sorted(WEEKDAYS.index(d) + 1 for d in shift.days))
        shifts.append(ShiftSpec(name, shift.start, days, rots))
    return PlantView(
        site=plant.site.name,
        timezone=plant.site.timezone,
        lines=lines,
        assets=assets,
        position_roots=tuple(roots),
        position_exceptions=exceptions,
        limits=limits,
        shifts=tuple(shifts),
    )
