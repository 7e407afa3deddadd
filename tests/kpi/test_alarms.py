"""Alarm-management KPIs (ISA-18.2 / EEMUA 191) on a synthetic journal, figures by hand.

Range 2026-01-05 08:00 .. 2026-01-06 08:00 UTC (24 h = 144 ten-minute intervals), 12 h shifts
(day crew A, night crew B). Positions: line1 (rotation), line2 (Bob around the clock), and the
site for assets no operator assignment covers.

line1 (15 alarms raised in the range, all in the day shift):
* r-flood on line1/w1/current, medium: 12 raises every 20 s from 08:00:00 (a flood interval:
  12 > 10; chattering: 3 raises within 40 s), each cleared after 60 s, acknowledged after 300 s
  (after the clear: unacknowledged-cleared);
* r-temp on line1/w2/temp, high: 09:00 (ack 30 min, clear 60 min); 12:00 (never acked,
  cleared after 10 min: unacknowledged-cleared, and only 20 h old at the end: not late yet);
* r-door on line1/w1/door, low: 13:00, cleared 14:00, acknowledged 50 h later (late, and
  unacknowledged-cleared);
* r-stuck on line1/w2/valve, raised the day before at 06:00, never cleared: standing.
Ack times (s): 12 x 300, 1800, 180000 -> median 300, p90 300 + 0.7 * 1500 = 1350.
Clear times (s): 12 x 60, 600, 3600, 3600 -> median 60, p90 600 + 0.6 * 3000 = 2400.
Late share: 1 of 14 (the 12:00 alarm is not decided yet).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plantpulse import yamlsrc
from plantpulse.alerts import Alert, JournalEntry
from plantpulse.config import PlantConfig
from plantpulse.kpi.alarms import alarm_kpis, position_of
from plantpulse.kpi.calendar import Calendar
from plantpulse.kpi.schema import AlarmSettings, VerdictSpec
from plantpulse.people.roster import Roster

S = 1_000_000_000
H = 3600 * S

PLANT = """\
site: {timezone: UTC}
team:
  people:
    Ann: {roles: [operator]}
    Ben: {roles: [operator]}
    Bob: {roles: [operator]}
  shifts:
    day: {start: "08:00", end: "20:00"}
    night: {start: "20:00", end: "08:00"}
  crews: {A: [Ann], B: [Ben]}
  rotations:
    two: {start: 2026-01-05, pattern: {day: "AB", night: "BA"}}
  assignments:
    - {asset: line1, roles: [operator], rotation: two}
    - {asset: line2, roles: [operator], people: [Bob]}
"""


def t(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    return int(datetime(2026, 1, day, hh, mm, ss, tzinfo=UTC).timestamp()) * S


def alert(
    n: str,
    rule: str,
    tag: str,
    sev: str,
    raised: int,
    *,
    cleared: int | None = None,
    acked: int | None = None,
) -> Alert:
    return Alert(
        n, rule, tag, tag.rpartition("/")[0], sev, "", raised, 0.0, cleared_at=cleared, acked_at=acked
    )  # type: ignore[arg-type]


def journal() -> tuple[list[Alert], list[JournalEntry]]:
    alerts = []
    for i in range(12):
        r = t(5, 8) + i * 20 * S
        alerts.append(
            alert(f"f{i}", "r-flood", "line1/w1/current", "medium", r, cleared=r + 60 * S, acked=r + 300 * S)
        )
    alerts += [
        alert("a", "r-temp", "line1/w2/temp", "high", t(5, 9), cleared=t(5, 10), acked=t(5, 9, 30)),
        alert("b", "r-temp", "line1/w2/temp", "high", t(5, 12), cleared=t(5, 12, 10)),
        alert("c", "r-door", "line1/w1/door", "low", t(5, 13), cleared=t(5, 14), acked=t(5, 13) + 50 * H),
        alert("d", "r-stuck", "line1/w2/valve", "medium", t(4, 6)),
        alert("x", "r-x", "line2/p1/x", "critical", t(5, 21), cleared=t(5, 21, 10), acked=t(5, 21, 2)),
        alert("u", "r-u", "utility/pump/pressure", "medium", t(5, 10), cleared=t(5, 11)),
    ]
    entries = [
        JournalEntry("u", t(5, 10, 5), "shelved", "Ann", {"until": t(5, 11), "reason": "检修"}),
        JournalEntry("u", t(5, 10, 30), "acknowledged", "Ann"),
        JournalEntry("a", t(5, 9, 30), "acknowledged", "Ann"),
    ]
    return alerts, entries


@pytest.fixture
def calendar() -> Calendar:
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=PLANT))
    return Calendar(Roster(plant.team, plant.site.timezone))


def test_positions_come_from_the_roster(calendar: Calendar) -> None:
    assert position_of(calendar, "line1/w1", "operator") == "line1"
    assert position_of(calendar, "line2/p1", "operator") == "line2"
    assert position_of(calendar, "utility/pump", "operator") == "*"


def test_figures_per_position_and_shift(calendar: Calendar) -> None:
    alerts, entries = journal()
    figs = alarm_kpis(
        alerts, entries, calendar, AlarmSettings(), start=t(5, 8), end=t(6, 8), shifts=["day", "night"]
    )
    rows = {(f.position, f.window.label if f.window else "all"): f for f in figs}
    assert list(rows) == [
        ("*", "all"),
        ("*", "2026-01-05 day"),
        ("*", "2026-01-05 night"),
        ("line1", "all"),
        ("line1", "2026-01-05 day"),
        ("line1", "2026-01-05 night"),
        ("line2", "all"),
        ("line2", "2026-01-05 day"),
        ("line2", "2026-01-05 night"),
    ]

    f = rows[("line1", "all")]
    assert (f.alarms, f.intervals, f.peak_per_interval, f.flood_intervals) == (15, 144, 12, 1)
    assert f.avg_per_interval == pytest.approx(15 / 144)
    assert f.flood_share == pytest.approx(1 / 144)
    assert f.chattering == (("r-flood", "line1/w1/current"),)
    assert f.standing == 1
    assert f.top10 == (
        ("r-flood", "line1/w1/current", 12),
        ("r-temp", "line1/w2/temp", 2),
        ("r-door", "line1/w1/door", 1),
    )
    assert f.top10_share == 1.0
    assert f.priority == {"low": 1, "medium": 12, "high": 2, "critical": 0}
    assert (f.ack_median, f.ack_p90) == (300 * S, pytest.approx(1350 * S))
    assert (f.clear_median, f.clear_p90) == (60 * S, pytest.approx(2400 * S))
    assert f.late_ack_share == pytest.approx(1 / 14)
    assert f.unack_cleared == 14
    assert f.verdict == "acceptable"
    assert f.targets == {
        "avg_per_interval": True,
        "flood_share": True,
        "chattering": False,
        "ack_median": True,
        "late_ack_share": False,
    }

    day, night = rows[("line1", "2026-01-05 day")], rows[("line1", "2026-01-05 night")]
    assert (day.crew, day.operators, day.alarms, day.intervals) == ("A", ("Ann",), 15, 72)
    assert day.avg_per_interval == pytest.approx(15 / 72)
    assert day.standing == 1  # r-stuck, 38 h old at 20:00
    assert (night.crew, night.operators, night.alarms, night.ack_median, night.late_ack_share) == (
        "B",
        ("Ben",),
        0,
        None,
        None,
    )
    assert night.standing == 1 and night.top10_share is None

    x = rows[("line2", "2026-01-05 night")]
    assert (x.alarms, x.ack_median, x.clear_median, x.late_ack_share, x.unack_cleared) == (
        1,
        120 * S,
        600 * S,
        0.0,
        0,
    )
    assert x.operators == ("Bob",) and x.crew is None
    site = rows[("*", "all")]
    assert (site.alarms, site.shelved, site.ack_median, site.unack_cleared) == (
        1,
        1,
        1800 * S,
        0,
    )  # ack from the journal


def test_verdict_bands_and_targets_are_configurable(calendar: Calendar) -> None:
    alerts, entries = journal()
    tight = AlarmSettings(verdict=VerdictSpec(acceptable=0.05, manageable=0.1, over_demanding=0.2))
    figs = alarm_kpis(alerts, entries, calendar, tight, start=t(5, 8), end=t(6, 8), shifts=["day"])
    by = {(f.position, f.window.label if f.window else "all"): f.verdict for f in figs}
    assert by[("line1", "all")] == "over-demanding"  # 0.104 per 10 min
    assert by[("line1", "2026-01-05 day")] == "unacceptable"  # 0.208 per 10 min
    assert by[("line2", "all")] == "acceptable"
