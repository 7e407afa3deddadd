"""KPI windows in the site's time zone: shifts from the roster, local hours, days and ISO weeks.

Pure: every window is computed from the team config and the zone, never from a clock.
Wall-clock times map to UTC exactly as the roster maps them (``Roster.to_ns``), so a shift
window and the people the roster puts on it always agree, also on daylight-saving nights
(a 22:00-06:00 night shift lasts 7 or 9 real hours then). Local days last 23 or 25 hours
on those dates; hours are always one real hour, labelled with their UTC offset, so the
repeated 02:00 of an autumn night gives two distinct windows.

A window belongs to a crew when a rotation puts one on its shift: walking the asset's levels
most specific first, the first assignment with a rotation that has this shift names it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from plantpulse.kpi.model import Break
from plantpulse.kpi.schema import WindowBy
from plantpulse.people.roster import Roster
from plantpulse.people.schema import NOBODY, WEEKDAYS, norm_asset
from plantpulse.timefmt import NS_PER_S

HOUR = 3600 * NS_PER_S


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """[start, end) in UTC ns. ``name`` is the shift's name; ``day`` the site-local date a shift
    started on (a night belongs to the day it starts), the hour's or day's date, or the
    Monday of the week."""

    start: int
    end: int
    by: WindowBy
    name: str = ""
    day: str = ""
    label: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.by, self.name, self.start)

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "by": self.by,
            "name": self.name,
            "day": self.day,
            "label": self.label,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Window:
        return cls(**d)  # type: ignore[arg-type]


class Calendar:
    """Windows, planned time and crews of one site (pure: a Roster and dates in, windows out)."""

    def __init__(self, roster: Roster) -> None:
        self.roster = roster
        self.team = roster.team

    # -- wall clock ----------------------------------------------------------------------------
    def _at(self, day: date, minutes: int) -> int:
        return self.roster.to_ns(datetime(day.year, day.month, day.day) + timedelta(minutes=minutes))

    def _days(self, start: int, end: int) -> list[date]:
        """Local dates that may hold a window or interval overlapping [start, end)."""
        first = self.roster.local(start).date() - timedelta(days=1)
        last = self.roster.local(max(start, end - 1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def _daily(
        self, start: int, end: int, t0: int, t1: int, days: Sequence[str] | None
    ) -> list[tuple[int, int, date]]:
        """Instances of a daily wall-clock interval [t0, t1) (minutes; t1 <= t0 crosses midnight)
        overlapping [start, end), with the local date each starts on."""
        out = []
        for d in self._days(start, end):
            if days is not None and WEEKDAYS[d.weekday()] not in days:
                continue
            a = self._at(d, t0)
            b = self._at(d + timedelta(days=1) if t1 <= t0 else d, t1)
            if a < end and b > start and b > a:
                out.append((a, b, d))
        return out

    # -- windows -------------------------------------------------------------------------------
    def windows(self, by: WindowBy, start: int, end: int, shifts: Iterable[str] = ()) -> list[Window]:
        """Every window of kind ``by`` overlapping [start, end), in time order (for shifts: of
        the shifts named)."""
        if by == "shift":
            out = []
            for name in shifts:
                s = self.team.shifts[name]
                for a, b, d in self._daily(start, end, s.start, s.end, s.days):
                    out.append(Window(a, b, "shift", name, d.isoformat(), f"{d.isoformat()} {name}"))
            return sorted(out)
        if by == "hour":
            out = []
            t = self.hour_start(start)
            while t < end:
                local = self.roster.local(t)
                label = local.isoformat(timespec="minutes")
                out.append(Window(t, t + HOUR, "hour", "", local.date().isoformat(), label))
                t += HOUR
            return out
        if by == "day":
            days = self._days(start, end)
            wins = [
                Window(
                    self._at(d, 0),
                    self._at(d + timedelta(days=1), 0),
                    "day",
                    "",
                    d.isoformat(),
                    d.isoformat(),
                )
                for d in days
            ]
            return [w for w in wins if w.start < end and w.end > start]
        mondays = sorted({d - timedelta(days=d.weekday()) for d in self._days(start, end)})
        out = []
        for m in mondays:
            y, wk, _ = m.isocalendar()
            w = Window(
                self._at(m, 0),
                self._at(m + timedelta(days=7), 0),
                "week",
                "",
                m.isoformat(),
                f"{y}-W{wk:02d}",
            )
            if w.start < end and w.end > start:
                out.append(w)
        return out

    def hour_start(self, t: int) -> int:
        """Start of the local hour holding ``t`` (one real hour; offsets are whole hours apart)."""
        off = self.roster.local(t).utcoffset()
        off_ns = int(off.total_seconds()) * NS_PER_S if off is not None else 0
        return t - (t + off_ns) % HOUR

    # -- planned time --------------------------------------------------------------------------
    def shift_time(self, shifts: Iterable[str], start: int, end: int) -> list[tuple[int, int]]:
        """Merged intervals of [start, end) inside an instance of one of ``shifts``."""
        spans = []
        for name in shifts:
            s = self.team.shifts[name]
            spans += [(a, b) for a, b, _ in self._daily(start, end, s.start, s.end, s.days)]
        return _merge(spans)

    def break_time(self, breaks: Iterable[Break], start: int, end: int) -> list[tuple[int, int]]:
        """Merged intervals of planned breaks overlapping [start, end)."""
        return _merge(
            [(a, b) for br in breaks for a, b, _ in self._daily(start, end, br.start, br.end, br.days)]
        )

    # -- people --------------------------------------------------------------------------------
    def crew(self, asset: str, window: Window) -> str | None:
        """The crew a rotation (or a fixed-crew assignment with this shift) puts on ``window``
        for ``asset``; None for non-shift windows and shifts no crew works."""
        if window.by != "shift":
            return None
        day = date.fromisoformat(window.day)
        team = self.team
        for level in self.roster.ancestors(norm_asset(asset)):
            for a in team.assignments:
                if a.path != level:
                    continue
                if a.rotation is not None:
                    rot = team.rotations[a.rotation]
                    pattern = rot.days().get(window.name)
                    if pattern is None:
                        continue
                    letter = pattern[(day - rot.start.date()).days % rot.cycle]
                    return None if letter == NOBODY else letter
                if a.crews and a.shift == window.name:
                    return "+".join(a.crews)
        return None

    def on_shift(self, asset: str, window: Window) -> dict[str, list[str]]:
        """Who held each role for ``asset`` when the window started (the roster snapshot)."""
        return self.roster.on_shift(norm_asset(asset), window.start)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def covers(intervals: Sequence[tuple[int, int]], t: int) -> bool:
    """Whether ``t`` lies in one of the merged, sorted ``intervals``."""
    i = bisect.bisect_right(intervals, (t, 1 << 62)) - 1
    return i >= 0 and intervals[i][0] <= t < intervals[i][1]
