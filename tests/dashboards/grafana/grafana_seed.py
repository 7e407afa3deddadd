"""A small plant, its rules and a seeded store whose dashboard figures are worked out by hand.

Times are minutes after ``B`` = 2026-03-02 00:00 UTC = 08:00 in Asia/Shanghai, when the day
shift starts (rotation day 56, crew A; the night shift before it, from 20:00 local on 1 March,
is also crew A: patterns AABB / BBAA). Operator positions: ``line1`` (rotation), ``line2``
(王强), which also covers ``cell-9`` through ``team.assets``; ``line3`` is nobody's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from plantpulse.alerts import AlertEvent, Severity
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store.postgres import PostgresStore

B = datetime(2026, 3, 2, tzinfo=UTC)
S = 1_000_000_000
CONTRACT = Path(__file__).with_name("kpi_results_contract.sql")

RULES = """\
rules:
  - id: cur-dev
    tag: "line1/weld*/current"
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    severity: high
  - {id: cur-fixed, tag: line1/weld01/current, deviation: {setpoint: 182, limit: 3}, severity: low}
  - {id: volt-band, tag: "line1/weld*/voltage", outside: [20, 28], severity: medium}
  - {id: force-high, tag: line2/press01/force, above: 900, severity: critical}
  - {id: force-low, tag: "line2/*/force", below: 100, severity: low}
  - {id: wire-rate, tag: "line1/weld*/wire_speed", rate: {per: 1s, above: 0.5}, severity: low}
"""


def plant_yaml(store_url: str, extra: str = "") -> str:
    tags = "\n".join(
        f'      - {{name: {t}, node: "ns=2;s={t}"}}'
        for t in (
            "line1/weld01/current",
            "line1/weld01/current_sp",
            "line1/weld01/voltage",
            "line1/weld01/wire_speed",
            "line2/press01/force",
            "line2/press01/jam",
        )
    )
    return f"""\
site: {{name: 焊装车间, timezone: Asia/Shanghai}}
sources:
  - kind: opcua
    name: plc
    endpoint: opc.tcp://127.0.0.1:4840
    tags:
{tags}
rules: [rules.yaml]
store: {{url: "{store_url}"}}
team:
  people:
    张伟: {{roles: [operator]}}
    李娜: {{roles: [team_lead]}}
    王强: {{roles: [operator]}}
    赵敏: {{roles: [team_lead]}}
  assets: {{line2: [cell-9]}}
  shifts:
    day: {{start: "08:00", end: "20:00"}}
    night: {{start: "20:00", end: "08:00"}}
  crews: {{A: [张伟, 李娜], B: [王强, 赵敏]}}
  rotations:
    two-crew: {{start: 2026-01-05, pattern: {{day: AABB, night: BBAA}}}}
  assignments:
    - {{asset: line1, roles: [operator, team_lead], rotation: two-crew}}
    - {{asset: line2, roles: [operator], people: [王强]}}
{extra}"""


def write_plant(directory: Path, store_url: str, extra: str = "") -> Path:
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    path = directory / "plant.yaml"
    path.write_text(plant_yaml(store_url, extra), encoding="utf-8")
    return path


def at(minutes: float) -> int:
    """ns since the epoch, ``minutes`` after B (to the millisecond)."""
    return round((B + timedelta(minutes=minutes)).timestamp() * 1000) * 1_000_000


def dt(minutes: float) -> datetime:
    return B + timedelta(minutes=minutes)


def samples() -> SampleBatch:
    """``current`` every 10 s for 30 min: 180, 181, ... 185 in each minute; its setpoint 180 for
    15 min, then 200 (one sample a minute); ``voltage`` 24 V with one bad and one NaN sample."""
    reg = TagRegistry()
    ts, tag, val, q = [], [], [], []
    for k in range(180):
        ts.append(at(k / 6))
        tag.append(reg.id("line1/weld01/current"))
        val.append(180.0 + k % 6)
        q.append(Quality.GOOD)
    for m in range(30):
        ts.append(at(m))
        tag.append(reg.id("line1/weld01/current_sp"))
        val.append(180.0 if m < 15 else 200.0)
        q.append(Quality.GOOD)
    for m in range(30):
        ts.append(at(m))
        tag.append(reg.id("line1/weld01/voltage"))
        val.append(float("nan") if m == 3 else 99.0 if m == 4 else 24.0)
        q.append(Quality.BAD if m == 4 else Quality.GOOD)
    return SampleBatch.make(reg, ts, tag, val, q)


ON_LINE1 = {"operator": ["张伟"], "team_lead": ["李娜"]}
ON_LINE2 = {"operator": ["王强"]}


class Alerts:
    """Alert events to store, acknowledgements and shelvings: the journal of the test hour."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.on_shift: dict[str, dict[str, list[str]]] = {}
        self.acks: list[tuple[str, int]] = []
        self.shelves: list[tuple[str, int, int]] = []

    def add(
        self,
        rule: str,
        tag: str,
        severity: Severity,
        raised: float,
        *,
        cleared: float | None = None,
        acked: float | None = None,
        on_shift: dict[str, list[str]] | None = None,
    ) -> str:
        raise_ev = AlertEvent("raised", rule, tag, severity, at(raised), at(raised), 1.0, f"{rule} on {tag}")
        self.events.append(raise_ev)
        if cleared is not None:
            clear_ev = AlertEvent(
                "cleared", rule, tag, severity, at(raised), at(cleared), 1.0, raise_ev.message
            )
            self.events.append(clear_ev)
        if acked is not None:
            self.acks.append((raise_ev.alert_id, at(acked)))
        self.on_shift[raise_ev.alert_id] = on_shift if on_shift is not None else ON_LINE2
        return raise_ev.alert_id


def alerts() -> Alerts:
    a = Alerts()
    a.add("cur-dev", "line1/weld01/current", "high", 5, cleared=7, acked=6, on_shift=ON_LINE1)
    shelved = a.add("volt-band", "line1/weld01/voltage", "medium", 10, on_shift=ON_LINE1)
    a.shelves.append((shelved, at(30), at(120)))
    a.add("force-high", "line2/press01/force", "critical", 12, cleared=20)
    a.add("force-high", "line2/press01/force", "critical", 12.5, cleared=13, acked=14)
    for i in range(3):  # chattering: three raises within a minute
        start = 21 + i / 3
        a.add("force-low", "line2/press01/force", "low", start, cleared=start + 10 / 60, acked=start + 2)
    for i in range(11):  # a flood: 11 alarms in one 10-minute interval, plus the cell door below
        start = 40 + i / 2
        a.add("press-jam", "line2/press01/jam", "high", start, cleared=start + 20 / 60, acked=start + i + 1)
    a.add("cell-door", "cell-9/door", "medium", 45, acked=45 + 49 * 60)
    a.add("mix-hot", "line3/mixer/temp", "low", 55, on_shift={})
    return a


def kpi_rows() -> list[tuple[object, ...]]:
    """(kpi, asset, kind, start, end, value, num, den, coverage, partial, crew, on_shift, target, dir, met)"""
    night, day, hour = (dt(-720), dt(0)), (dt(0), dt(720)), (dt(0), dt(60))
    crew_a = json.dumps({"operator": ["张伟"], "team_lead": ["李娜"]})
    return [
        ("weld-fpy", "line1", "shift", *night, 0.995, 995, 1000, 1.0, False, "A", crew_a, 0.992, ">=", True),
        ("weld-fpy", "line1", "shift", *day, 0.990, 99, 100, 0.5, True, "A", crew_a, 0.992, ">=", False),
        ("weld-fpy", "line1", "hour", *hour, 0.990, 99, 100, 1.0, False, None, None, 0.992, ">=", False),
        ("rework-rate", "line1", "shift", *night, 0.03, 30, 1000, 1.0, False, "A", crew_a, 0.02, "<=", False),
        ("rework-rate", "line1", "shift", *day, 0.02, 2, 100, 0.5, True, "A", crew_a, 0.02, "<=", True),
        ("press-oee", "line2", "shift", *day, 0.9, None, None, 0.5, True, "A", None, 0.85, ">=", True),
    ]


async def seed(store: PostgresStore) -> None:
    await store.write_samples(samples(), "seed-samples")
    a = alerts()
    await store.write_alert_events(a.events, "seed-alerts", a.on_shift)
    for alert_id, when in a.acks:
        await store.acknowledge(alert_id, "张伟", when)
    for alert_id, when, until in a.shelves:
        await store.shelve(alert_id, "张伟", when, until, "sensor work")


def create_kpi_results(url: str) -> None:
    """The contract table (kpi_results_contract.sql) with the rows of ``kpi_rows``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CONTRACT.read_text(encoding="utf-8"))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO kpi_results (kpi, asset, window_kind, window_start, window_end, value,"
                " numerator, denominator, coverage, partial, crew, on_shift, target, direction, met,"
                " computed_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                kpi_rows(),
            )
