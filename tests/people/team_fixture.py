"""A small but complete team used by the people and notifier tests (Asia/Shanghai)."""

from __future__ import annotations

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.people.roster import Roster

PLANT = """\
site: {name: 焊装车间, timezone: Asia/Shanghai}
team:
  language: zh
  people:
    张伟: {roles: [operator], contacts: {wecom: "wecombot://KEYA"}}
    李娜: {roles: [team_lead], contacts: {wecom: "wecombot://KEYB", sms: "json://127.0.0.1:9/sms"}}
    王强: {roles: [operator]}
    赵敏: {roles: [team_lead]}
    陈刚: {roles: [operator]}
    刘洋: {roles: [team_lead]}
    孙丽: {roles: [operator]}
    周杰: {roles: [team_lead]}
    吴芳: {roles: [quality_engineer], contacts: {email: "mailto://qa:pw@example.com?to=wu@example.com"}}
    郑浩: {roles: [workshop_director], language: en, contacts: {wecom: "wecombot://KEYZ"}}
    Anna: {roles: [equipment_engineer]}
    Bob: {roles: [maintenance]}
  assets:
    hall-a: [line1]
  shifts:
    early: {start: "06:00", end: "14:00"}
    late: {start: "14:00", end: "22:00"}
    night: {start: "22:00", end: "06:00"}
    office: {start: "08:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
  crews:
    A: [张伟, 李娜]
    B: [王强, 赵敏]
    C: [陈刚, 刘洋]
    D: [孙丽, 周杰]
  rotations:
    four-crew:
      start: 2026-11-30          # a Monday: day 0 of the 8-day cycle
      pattern:
        early: "AA DD CC BB"
        late:  "BB AA DD CC"
        night: "CC BB AA DD"
  assignments:
    - {asset: line1, roles: [operator, team_lead], rotation: four-crew}
    - {asset: line1, roles: [quality_engineer], people: [吴芳], shift: office}
    - {asset: "*", roles: [workshop_director], people: [郑浩]}
    - {asset: line1/weld01, roles: [equipment_engineer], people: [Anna], shift: office}
    - {asset: line1/weld01, roles: [operator], people: [王强], shift: early}
    - {asset: hall-a, roles: [maintenance], people: [Bob]}
  overrides:
    - {kind: leave, person: 张伟, from: 2026-12-01, to: 2026-12-01}
    - {kind: cover, person: 陈刚, for: 李娜, from: "2026-12-08 06:00", to: "2026-12-08 14:00"}
    - {kind: swap, people: [孙丽, 张伟], from: "2026-12-09 00:00", to: "2026-12-10 00:00"}
    - {kind: cover, person: Anna, roles: [quality_engineer], asset: line1/weld01,
       from: 2026-12-12, to: 2026-12-13}
  policies:
    default:
      repeat: 10m
      steps:
        - {after: 0s, to: [operator, team_lead], channels: [wecom]}
        - {after: 15m, to: [quality_engineer]}
        - {after: 45m, to: [workshop_director]}
  maintenance:
    - {asset: line1/weld01, from: "2026-12-05 08:00", to: "2026-12-05 12:00", reason: 更换焊枪}
"""


def plant(text: str = PLANT) -> PlantConfig:
    return yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=text))


def roster(text: str = PLANT) -> Roster:
    p = plant(text)
    return Roster(p.team, p.site.timezone)
