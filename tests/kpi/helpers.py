"""A plant and a KPI file shared by the KPI tests (Europe/Berlin: both DST nights are real)."""

from __future__ import annotations

from pathlib import Path

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.kpi.loader import load_kpi_files
from plantpulse.kpi.model import KpiSet
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.schema import WindowBy
from plantpulse.people.roster import Roster

PLANT = """\
site: {name: 焊装车间, timezone: Europe/Berlin}
team:
  people:
    张伟: {roles: [operator]}
    李娜: {roles: [team_lead]}
    王强: {roles: [operator]}
    赵敏: {roles: [team_lead]}
    陈刚: {roles: [operator]}
    刘洋: {roles: [team_lead]}
    吴芳: {roles: [quality_engineer]}
  shifts:
    early: {start: "06:00", end: "14:00"}
    late: {start: "14:00", end: "22:00"}
    night: {start: "22:00", end: "06:00"}
  crews:
    A: [张伟, 李娜]
    B: [王强, 赵敏]
    C: [陈刚, 刘洋]
  rotations:
    three-crew:
      start: 2026-01-05
      pattern:
        early: "ABC"
        late:  "BCA"
        night: "CAB"
  assignments:
    - {asset: l, roles: [operator, team_lead], rotation: three-crew}
    - {asset: l, roles: [quality_engineer], people: [吴芳]}
  policies:
    weld-quality: {steps: [{to: [team_lead, quality_engineer]}]}
"""

KPIS = """\
breaks:
  - {start: "12:00", end: "12:30"}
  - {start: "02:00", end: "02:30"}
kpis:
  - id: fpy
    name: {zh: 一次合格率, en: First-pass yield}
    kind: yield
    assets: l/*
    good: "{asset}/good"
    total: "{asset}/total"
    modulus: 1000
    windows: [shift, hour, day]
    target: ">= 90%"
    warning: "95%"
    notify: weld-quality
  - id: rework
    kind: ratio
    assets: l/*
    numerator: "{asset}/rework"
    denominator: "{asset}/made"
    windows: [shift, hour]
    target: "<= 5%"
  - id: avail
    kind: availability
    assets: l/*
    state: "{asset}/state"
    running: [1, 2]
    windows: [shift, day]
  - id: perf
    kind: performance
    assets: l/*
    total: "{asset}/total"
    state: "{asset}/state"
    running: [1, 2]
    ideal_cycle: 30s
    modulus: 1000
    windows: [shift, day]
  - id: oee
    kind: oee
    availability: avail
    performance: perf
    quality: fpy
    windows: [shift, day]
    target: ">= 60%"
  - id: temp-mean
    kind: time_weighted
    assets: l/*
    tag: "{asset}/temp"
    stat: mean
    windows: [hour, shift]
  - id: temp-min
    kind: time_weighted
    assets: l/*
    tag: "{asset}/temp"
    stat: min
    windows: [shift]
  - id: temp-max
    kind: time_weighted
    assets: l/*
    tag: "{asset}/temp"
    stat: max
    windows: [shift]
  - id: temp-out
    kind: time_weighted
    assets: l/*
    tag: "{asset}/temp"
    stat: outside
    band: [20, 30]
    windows: [shift, week]
    target: "<= 10%"
  - id: temp-p90
    kind: time_weighted
    assets: l/*
    tag: "{asset}/temp"
    stat: percentile
    p: 90
    bins: {from: 0, to: 50, width: 0.5}
    windows: [shift]
  - id: alarms
    kind: alert_count
    assets: l/*
    rules: ["weld-*"]
    windows: [shift, hour]
"""


def plant() -> PlantConfig:
    return yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=PLANT))


def kpis(tmp: Path, text: str = KPIS) -> KpiSet:
    f = tmp / "kpis.yaml"
    f.write_text(text, encoding="utf-8")
    p = plant()
    return load_kpi_files([f], team=p.team, rule_ids={"weld-current", "weld-voltage"})


def make_plan(tmp: Path, text: str = KPIS, by: WindowBy | None = None) -> KpiPlan:
    p = plant()
    return KpiPlan(kpis(tmp, text), Roster(p.team, p.site.timezone), by=by)
