"""What the KPI state needs to know of the plant: KPIs, their windows, planned time, calendar.

``KpiPlan`` is built once from the validated KPIs and the roster and never changes. It
answers, for any instant, which calendar boundaries come next (window edges, shift edges,
planned breaks) and whether a stretch starting there is planned production time for a KPI.
Between two consecutive boundaries nothing about windows or planning changes: that is a
*segment*, the unit the state sums over before folding into every open window.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from plantpulse.kpi.calendar import Calendar, Window, covers
from plantpulse.kpi.loader import default_shifts
from plantpulse.kpi.model import PLANNED_KINDS, Break, Kpi, KpiSet
from plantpulse.kpi.schema import WINDOW_KINDS, WindowBy
from plantpulse.people.roster import Roster
from plantpulse.timefmt import NS_PER_S

HORIZON = 8 * 86400 * NS_PER_S


@dataclass(frozen=True, slots=True)
class Planning:
    """Planned production time: inside one of ``shifts`` (None: always) and outside ``breaks``."""

    shifts: tuple[str, ...] | None
    breaks: tuple[Break, ...]


class KpiPlan:
    """Compiled KPIs over one site's calendar. ``by`` replaces every KPI's windows (reports)."""

    def __init__(self, kpis: KpiSet | Sequence[Kpi], roster: Roster, *, by: WindowBy | None = None) -> None:
        self.kpis: list[Kpi] = list(kpis.kpis if isinstance(kpis, KpiSet) else kpis)
        self.roster = roster
        self.calendar = Calendar(roster)
        team = roster.team
        fallback = default_shifts(team)
        self.windows: dict[str, tuple[WindowBy, ...]] = {}
        self.shifts: dict[str, tuple[str, ...]] = {}
        self.planning: dict[str, int] = {}
        self.groups: list[Planning] = []
        for k in self.kpis:
            names = k.shifts if k.shifts is not None else fallback
            wins = (by,) if by is not None else k.windows
            if "shift" in wins and not team.shifts:
                raise ValueError(f"kpi {k.id}: shift windows need shifts in the team config")
            self.windows[k.id] = wins
            self.shifts[k.id] = names
            if k.kind in PLANNED_KINDS:
                p = Planning(names if team.shifts else None, k.breaks)
                if p not in self.groups:
                    self.groups.append(p)
                self.planning[k.id] = self.groups.index(p)
        self.kinds = [w for w in WINDOW_KINDS if any(w in ws for ws in self.windows.values())]
        self.shift_names = tuple(
            dict.fromkeys(n for k in self.kpis if "shift" in self.windows[k.id] for n in self.shifts[k.id])
        )
        self._span = (0, 0)
        self._bounds: list[int] = []
        self._intervals: list[tuple[list[tuple[int, int]] | None, list[tuple[int, int]]]] = []

    def wants(self, kpi: Kpi, w: Window) -> bool:
        """Whether ``kpi`` is computed over window ``w``."""
        return w.by in self.windows[kpi.id] and (w.by != "shift" or w.name in self.shifts[kpi.id])

    def windows_over(self, start: int, end: int) -> list[Window]:
        """Every window any KPI uses that overlaps [start, end), ordered by start."""
        out = [
            w
            for by in self.kinds
            for w in self.calendar.windows(by, start, end, self.shift_names if by == "shift" else ())
        ]
        return sorted(out)

    def _load(self, t: int) -> None:
        if self._span[0] <= t < self._span[1] - 86400 * NS_PER_S:
            return
        start, end = t, t + HORIZON
        bounds = {x for w in self.windows_over(start, end) for x in (w.start, w.end)}
        self._intervals = []
        for g in self.groups:
            shift_iv = self.calendar.shift_time(g.shifts, start, end) if g.shifts is not None else None
            break_iv = self.calendar.break_time(g.breaks, start, end)
            for iv in (shift_iv or [], break_iv):
                bounds.update(x for pair in iv for x in pair)
            self._intervals.append((shift_iv, break_iv))
        self._bounds = sorted(bounds)
        self._span = (start, end)

    def next_boundary(self, t: int) -> int:
        """The first calendar boundary after ``t``."""
        self._load(t)
        i = bisect.bisect_right(self._bounds, t)
        if i < len(self._bounds) and self._bounds[i] < self._span[1] - 86400 * NS_PER_S:
            return self._bounds[i]
        self._span = (0, 0)
        self._load(t)
        i = bisect.bisect_right(self._bounds, t)
        return self._bounds[i] if i < len(self._bounds) else self._span[1]

    def planned(self, group: int, t: int) -> bool:
        """Whether the segment starting at ``t`` is planned production time for ``group``."""
        self._load(t)
        shift_iv, break_iv = self._intervals[group]
        return (shift_iv is None or covers(shift_iv, t)) and not covers(break_iv, t)

    def planned_time(self, group: int, start: int, end: int) -> int:
        """ns of planned production time of ``group`` in [start, end)."""
        g = self.groups[group]
        spans = self.calendar.shift_time(g.shifts, start, end) if g.shifts is not None else [(start, end)]
        breaks = self.calendar.break_time(g.breaks, start, end)
        total = 0
        for s0, s1 in spans:
            a, b = max(s0, start), min(s1, end)
            if b <= a:
                continue
            total += b - a
            for c, d in breaks:
                total -= max(0, min(b, d) - max(a, c))
        return total
