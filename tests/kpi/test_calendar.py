"""Windows in the site's zone: ISO weeks over a DST change, local hours in a half-hour zone,
weekday-only shifts, crews of fixed-crew assignments, planned time with breaks over midnight."""

from __future__ import annotations

from datetime import UTC, datetime

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.kpi.calendar import Calendar
from plantpulse.kpi.model import Break, Kpi
from plantpulse.kpi.plan import KpiPlan
from plantpulse.people.roster import Roster
from tests.kpi.helpers import plant

S = 1_000_000_000
H = 3600 * S


def utc(*a: int) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp()) * S  # type: ignore[misc]


def test_iso_week_over_spring_forward_lasts_167_hours() -> None:
    p = plant()
    cal = Calendar(Roster(p.team, p.site.timezone))
    [w] = cal.windows("week", utc(2026, 3, 26), utc(2026, 3, 26) + 1)
    assert (w.label, w.day, (w.end - w.start) // H) == ("2026-W13", "2026-03-23", 167)
    assert w.start == utc(2026, 3, 22, 23)  # Monday 00:00 CET


def test_hours_follow_a_half_hour_offset() -> None:
    cfg = yamlsrc.validate(PlantConfig, yamlsrc.load("p.yaml", text="site: {timezone: Asia/Kolkata}\n"))
    cal = Calendar(Roster(cfg.team, cfg.site.timezone))
    ws = cal.windows("hour", utc(2026, 1, 5, 3, 40), utc(2026, 1, 5, 5, 40))
    assert [(w.label, w.start) for w in ws] == [
        ("2026-01-05T09:00+05:30", utc(2026, 1, 5, 3, 30)),
        ("2026-01-05T10:00+05:30", utc(2026, 1, 5, 4, 30)),
        ("2026-01-05T11:00+05:30", utc(2026, 1, 5, 5, 30)),
    ]


TEAM = """\
site: {timezone: Asia/Shanghai}
team:
  people: {Ann: {roles: [operator]}, Bo: {roles: [operator]}}
  shifts:
    office: {start: "08:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
    night: {start: "22:00", end: "06:00"}
  crews: {X: [Ann], Y: [Bo]}
  assignments:
    - {asset: line1, roles: [operator], crews: [X], shift: office}
    - {asset: line1, roles: [operator], crews: [Y], shift: night}
"""


def test_weekday_shifts_and_fixed_crews() -> None:
    cfg = yamlsrc.validate(PlantConfig, yamlsrc.load("p.yaml", text=TEAM))
    cal = Calendar(Roster(cfg.team, cfg.site.timezone))
    # Friday 2026-01-09 to Monday 2026-01-12 (Shanghai): office on Fri and Mon only
    ws = cal.windows("shift", utc(2026, 1, 8, 16), utc(2026, 1, 12, 16), ["office"])
    assert [w.label for w in ws] == ["2026-01-09 office", "2026-01-12 office"]
    assert cal.crew("line1/w1", ws[0]) == "X"
    [night] = cal.windows("shift", utc(2026, 1, 9, 15), utc(2026, 1, 9, 15) + 1, ["night"])
    assert (night.label, cal.crew("line1", night), cal.on_shift("line1", night)) == (
        "2026-01-09 night",
        "Y",
        {"operator": ["Bo"]},
    )


def test_planned_time_with_a_break_over_midnight() -> None:
    cfg = yamlsrc.validate(PlantConfig, yamlsrc.load("p.yaml", text=TEAM))
    roster = Roster(cfg.team, cfg.site.timezone)
    kpi = Kpi(
        "a",
        "availability",
        assets="line1",
        inputs=("{asset}/s",),
        running=(1.0,),
        windows=("day",),
        shifts=("night",),
        breaks=(Break(23 * 60 + 30, 30),),
    )
    plan = KpiPlan([kpi], roster)
    day = utc(2026, 1, 8, 16)  # 2026-01-09 00:00 in Shanghai
    # the day holds 00:00-06:00 of one night and 22:00-24:00 of the next, minus 00:00-00:30 and
    # 23:30-24:00 of the break: 6 h + 2 h - 1 h
    assert plan.planned_time(0, day, day + 24 * H) == 7 * H
    assert plan.planned(0, day + 1 * H) and not plan.planned(0, day + 10 * H)
    assert not plan.planned(0, day + 23 * H + 45 * 60 * S)
