"""A small welding plant with approvals on: people, chains, a rule file and a KPI file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plantpulse.alerts import AlertEvent
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.service import Plant, decide, propose
from plantpulse.config import StoreConfig
from plantpulse.samples import Sample
from plantpulse.store import Store
from plantpulse.stream.pipeline import Pipeline

T0 = 1_767_225_600 * 10**9  # 2026-01-01 00:00 UTC
S = 10**9
CUR, SP, TEMP = "line1/weld01/current", "line1/weld01/current_sp", "line1/weld01/temp"

RULES = """\
rules:
  - id: weld-current
    description: 焊接电流偏离设定值
    tag: line1/weld01/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 3s
    severity: high
  - id: weld-temp
    tag: line1/weld01/temp
    above: 80
    for: 10s
    severity: medium
"""

KPIS = """\
alarms:
  interval: 10m
kpis:
  - id: weld-alerts
    kind: alert_count
    assets: line1
    rules: [weld-*]
    windows: [day]
"""


def plant_yaml(store: StoreConfig, contacts: dict[str, str] | None = None, extra: str = "") -> str:
    c = contacts or {}

    def person(name: str, roles: str) -> str:
        url = c.get(name)
        contact = f', contacts: {{hook: "{url}"}}' if url else ""
        return f"    {name}: {{roles: [{roles}]{contact}}}\n"

    mode = "" if store.url.startswith("sqlite") else '\n  timescale: {mode: "off"}'
    return (
        f"site: {{name: 焊装车间, timezone: Asia/Shanghai}}\n"
        f"store:\n  url: {store.url}{mode}\n"
        "rules: [rules/*.yaml]\n"
        "kpis: [kpis/*.yaml]\n"
        "team:\n"
        "  people:\n"
        + person("吴芳", "quality_engineer")
        + person("陈工", "quality_engineer")
        + person("李娜", "team_lead")
        + person("郑浩", "workshop_director")
        + person("王强", "operator")
        + "  assignments:\n"
        "    - {asset: line1, roles: [operator], people: [王强]}\n"
        "    - {asset: '*', roles: [workshop_director], people: [郑浩]}\n"
        "approvals:\n"
        "  chains:\n"
        "    - files: [rules/*.yaml]\n"
        "      levels: [quality_engineer, team_lead, workshop_director]\n"
        "      remind: 4h\n"
        "      escalate: {after: 1d, to: [workshop_director]}\n"
        "    - files: [kpis/*.yaml]\n"
        "      levels: [quality_engineer, workshop_director]\n"
        "  emergency: {roles: [workshop_director]}\n"
        "  backtest_days: 2\n" + extra
    )


def make_plant(
    root: Path, store: StoreConfig, contacts: dict[str, str] | None = None, extra: str = ""
) -> Path:
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "kpis").mkdir(exist_ok=True)
    (root / "rules" / "weld.yaml").write_text(RULES, encoding="utf-8")
    (root / "kpis" / "alarms.yaml").write_text(KPIS, encoding="utf-8")
    path = root / "plant.yaml"
    path.write_text(plant_yaml(store, contacts, extra), encoding="utf-8")
    return path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def at(t: float, tag: str, value: float) -> Sample:
    return Sample(T0 + int(t * S), tag, value)


async def step(
    p: Pipeline, samples: list[Sample] | None = None, *, beat: float | None = None
) -> list[AlertEvent]:
    """One micro-batch: these samples (or a heartbeat at ``beat`` s) through the spool and the engine."""
    if samples:
        await p.sink.put(samples)
    if beat is not None:
        p.sink.heartbeat("src", T0 + int(beat * S))
    return await p.step()


async def approve_edit(plant: Plant, log: ChangeLog, store: Store, root: Path, *, old: str, new: str) -> int:
    """rules/weld.yaml with ``old`` replaced by ``new``, proposed and signed by all three levels."""
    rules = root / "rules" / "weld.yaml"
    edit(rules, old, new)
    c = await propose(plant, log, store, [rules], by="吴芳", reason="x", now=T0)
    for who in ("陈工", "李娜", "郑浩"):
        await decide(plant, log, c.id, by=who, approve=True, text=None, now=T0)
    return c.id


class Recorded:
    """The pipeline's Notifier protocol, recording what would be pushed (our own interface)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str, int]] = []

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        self.pushed += [(e.kind, e.rule, e.at - T0) for e in events]
