"""Alarm-management KPIs (ISA-18.2 / EEMUA 191) per operator position and per shift. Pure.

    report = alarm_kpis(alerts, journal, calendar, settings, start=t0, end=t1, shifts=names)

An operator position is the asset level whose assignment gives the position role (default
``operator``): walking an alarm's asset upwards, the first level with such an assignment owns
it (no level: the site, ``*``). Figures for each position over [start, end) and for each shift
window inside it (docs/kpis.md defines each one):

* rate: alarms raised per interval (10 min) on average, and the peak of any clock-aligned
  interval; flood: share of intervals with more than ``flood`` (10) alarms;
* chattering: alarms (rule, tag) raised ``chatter.count`` (3) times within ``chatter.within``
  (1 min); standing: alarms active longer than ``standing`` (24 h) at the window's end;
* top-10 bad actors (rule, tag) and their share of all alarms; priority (severity) mix;
* time to acknowledge and to clear (median and p90, numpy's linear interpolation); the share
  acknowledged after ``late_ack`` (48 h) among alarms acknowledged or older than that;
  unacknowledged-cleared: alarms that cleared before anyone acknowledged them; shelved;
* EEMUA 191's verdict on the average rate, and whether each configured target is met.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantpulse.alerts import SEVERITIES, Alert, JournalEntry
from plantpulse.kpi.calendar import Calendar, Window
from plantpulse.kpi.schema import AlarmSettings
from plantpulse.people.schema import ROOT

__all__ = ["AlarmFigures", "alarm_kpis", "position_of"]

VERDICTS = ("acceptable", "manageable", "over-demanding", "unacceptable")


@dataclass(frozen=True)
class AlarmFigures:
    position: str
    window: Window | None  # None: the whole range
    start: int
    end: int
    crew: str | None = None
    operators: tuple[str, ...] = ()
    alarms: int = 0
    intervals: int = 0
    avg_per_interval: float = 0.0
    peak_per_interval: int = 0
    flood_intervals: int = 0
    flood_share: float = 0.0
    chattering: tuple[tuple[str, str], ...] = ()
    standing: int = 0
    top10: tuple[tuple[str, str, int], ...] = ()
    top10_share: float | None = None
    priority: dict[str, int] = field(default_factory=dict)
    ack_median: float | None = None  # ns
    ack_p90: float | None = None
    clear_median: float | None = None
    clear_p90: float | None = None
    late_ack_share: float | None = None
    unack_cleared: int = 0
    shelved: int = 0
    verdict: str = "acceptable"
    targets: dict[str, bool] = field(default_factory=dict)

    def figure(self, name: str) -> float | None:
        """The figure a target of that name is compared with."""
        v = {"chattering": len(self.chattering)}.get(name, getattr(self, name))
        return None if v is None else float(v)


def position_of(calendar: Calendar, asset: str, role: str) -> str:
    """The operator position owning ``asset``: its nearest level with an assignment giving ``role``."""
    levels = {a.path for a in calendar.team.assignments if role in a.roles}
    for level in calendar.roster.ancestors(asset):
        if level in levels:
            return level or "*"
    return "*"


def _pct(xs: list[int], q: float) -> float | None:
    return float(np.percentile(np.array(xs, dtype=np.float64), q)) if xs else None


def _verdict(avg: float, s: AlarmSettings) -> str:
    v = s.verdict
    if avg <= v.acceptable:
        return VERDICTS[0]
    if avg <= v.manageable:
        return VERDICTS[1]
    if avg <= v.over_demanding:
        return VERDICTS[2]
    return VERDICTS[3]


def _chattering(by_alarm: dict[tuple[str, str], list[int]], s: AlarmSettings) -> tuple[tuple[str, str], ...]:
    k, within = s.chatter.count, s.chatter.within
    out = []
    for key, raised in by_alarm.items():
        ts = sorted(raised)
        if any(t1 - t0 < within for t0, t1 in zip(ts, ts[k - 1 :], strict=False)):
            out.append(key)
    return tuple(sorted(out))


def _figures(
    position: str,
    window: Window | None,
    span: tuple[int, int],
    alerts: Sequence[Alert],
    *,
    acks: dict[str, int],
    shelves: dict[str, list[int]],
    s: AlarmSettings,
    now: int,
) -> dict[str, Any]:
    start, end = span
    raised = [a for a in alerts if start <= a.raised_at < end]
    step = s.interval
    first = start - start % step
    nint = max(1, -((first - end) // step))
    buckets = Counter((a.raised_at - first) // step for a in raised)
    n = len(raised)
    avg = n / ((end - start) / step) if end > start else 0.0
    flood = sum(1 for c in buckets.values() if c > s.flood)
    by_alarm: dict[tuple[str, str], list[int]] = {}
    for a in raised:
        by_alarm.setdefault((a.rule, a.tag), []).append(a.raised_at)
    chattering = _chattering(by_alarm, s)
    standing = sum(
        1
        for a in alerts
        if a.raised_at < end
        and (a.cleared_at is None or a.cleared_at > end)
        and end - a.raised_at > s.standing
    )
    top = sorted(((r, t, len(ts)) for (r, t), ts in by_alarm.items()), key=lambda x: (-x[2], x[0], x[1]))[:10]
    ack_times, late, known = [], 0, 0
    for a in raised:
        acked = acks.get(a.id)
        if acked is not None:
            ack_times.append(acked - a.raised_at)
            known += 1
            late += acked - a.raised_at > s.late_ack
        elif now - a.raised_at > s.late_ack:
            known += 1
            late += 1
    clear_times = [a.cleared_at - a.raised_at for a in raised if a.cleared_at is not None]
    unack_cleared = sum(
        1
        for a in raised
        if a.cleared_at is not None and (acks.get(a.id) is None or acks[a.id] > a.cleared_at)
    )
    shelved = sum(1 for a in alerts for t in shelves.get(a.id, ()) if start <= t < end)
    return {
        "position": position,
        "window": window,
        "start": start,
        "end": end,
        "alarms": n,
        "intervals": nint,
        "avg_per_interval": avg,
        "peak_per_interval": max(buckets.values(), default=0),
        "flood_intervals": flood,
        "flood_share": flood / nint,
        "chattering": chattering,
        "standing": standing,
        "top10": tuple(top),
        "top10_share": sum(c for _, _, c in top) / n if n else None,
        "priority": {sev: sum(1 for a in raised if a.severity == sev) for sev in SEVERITIES},
        "ack_median": _pct(ack_times, 50),
        "ack_p90": _pct(ack_times, 90),
        "clear_median": _pct(clear_times, 50),
        "clear_p90": _pct(clear_times, 90),
        "late_ack_share": late / known if known else None,
        "unack_cleared": unack_cleared,
        "shelved": shelved,
        "verdict": _verdict(avg, s),
    }


def _targets(f: AlarmFigures, s: AlarmSettings) -> dict[str, bool]:
    out = {}
    for name in type(s.targets).model_fields:
        limit = getattr(s.targets, name)
        if limit is None:
            continue
        value = f.figure(name)
        if value is not None:
            out[name] = value <= float(limit)
    return out


def alarm_kpis(
    alerts: Sequence[Alert],
    journal: Sequence[JournalEntry],
    calendar: Calendar,
    settings: AlarmSettings,
    *,
    start: int,
    end: int,
    shifts: Sequence[str] = (),
) -> list[AlarmFigures]:
    """Figures per position for [start, end), then per position and shift window inside it.

    ``alerts`` should hold every alarm raised in the range and those raised before that may
    still have been active (for standing alarms); ``end`` is also the instant at which
    unacknowledged alarms are judged late."""
    acks: dict[str, int] = {a.id: a.acked_at for a in alerts if a.acked_at is not None}
    shelves: dict[str, list[int]] = {}
    for e in sorted(journal, key=lambda e: e.at):
        if e.action == "acknowledged":
            acks.setdefault(e.alert_id, e.at)
        elif e.action == "shelved":
            shelves.setdefault(e.alert_id, []).append(e.at)
    role = settings.role
    by_pos: dict[str, list[Alert]] = {}
    for a in sorted(alerts, key=lambda a: (a.raised_at, a.id)):
        by_pos.setdefault(position_of(calendar, a.asset, role), []).append(a)
    wins = [w for w in calendar.windows("shift", start, end, shifts) if start <= w.start and w.end <= end]
    out: list[AlarmFigures] = []
    for pos in sorted(by_pos):
        items = by_pos[pos]
        spans: list[Window | None] = [None, *wins]
        for w in spans:
            span = (start, end) if w is None else (w.start, w.end)
            data = _figures(pos, w, span, items, acks=acks, shelves=shelves, s=settings, now=end)
            if w is not None:
                level = ROOT if pos == "*" else pos
                data["crew"] = calendar.crew(level, w)
                data["operators"] = tuple(calendar.roster.holders(level, role, w.start))
            f = AlarmFigures(**data)
            out.append(AlarmFigures(**{**data, "targets": _targets(f, settings)}))
    return out
