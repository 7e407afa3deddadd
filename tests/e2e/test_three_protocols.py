"""End to end over all three protocols at once: one scenario, one clock, one pipeline.

weld01 is an OPC UA device, weld02 a Modbus TCP unit (polled), weld03 an MQTT device (JSON or
Sparkplug B, on the real Mosquitto or on the embedded broker). Each carries one fault; the
pipeline must store exactly the scenario's expected alerts, each raised and cleared within a
poll interval plus latency of the truth, and no others.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from pathlib import Path
from typing import Literal

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.app import run_pipeline
from plantpulse.config import PlantConfig, SpoolConfig, StoreConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rule_files
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.scenario import Scenario, load_scenario, truth_samples
from plantpulse.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

SCENARIO = """\
name: three
asset: line1
welders: 3
seed: 5
tick: 100ms
duration: 13s
protocols: {opcua: [weld01], modbus: [weld02], mqtt: [weld03]}
mqtt_format: FORMAT
faults:
  - {welder: weld01, kind: step, signal: current, start: 2s, duration: 3s, magnitude: 8}
  - {welder: weld02, kind: step, signal: current, start: 4s, duration: 3s, magnitude: -8}
  - {welder: weld03, kind: flatline, signal: current, start: 7s, duration: 3s}
expected_alerts:
  - {rule: current-deviation, tag: line1/weld01/current, raised_at: 4s, cleared_at: 5500ms}
  - {rule: current-deviation, tag: line1/weld02/current, raised_at: 6s, cleared_at: 7500ms}
  - {rule: current-stale, tag: line1/weld03/current, raised_at: 9s, cleared_at: 10s}
"""

RULES = """\
rules:
  - id: current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 2s
    clear: {limit: 4, for: 500ms}
    severity: high
  - id: current-stale
    tag: line1/weld*/current
    stale: 2s
    severity: medium
"""

# Modbus values are stamped when polled (every 100 ms), OPC UA and MQTT carry the tick's time
TOLERANCE = 250_000_000
START = 1_767_225_600_000_000_000


def make(tmp_path: Path, fmt: str) -> tuple[Scenario, list[Rule]]:
    (tmp_path / "scenario.yaml").write_text(SCENARIO.replace("FORMAT", fmt), encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    return load_scenario(tmp_path / "scenario.yaml"), load_rule_files([tmp_path / "rules.yaml"])


def alerts_over_truth(scenario: Scenario, rules: list[Rule]) -> list[tuple[str, str, int, int | None]]:
    tags = TagRegistry(scenario.tag_names())
    engine = Engine(rules, tags)
    events = engine.process(SampleBatch.from_samples(tags, truth_samples(scenario, START)))
    events += engine.advance(START + scenario.duration)
    raised = {(e.rule, e.tag, e.raised_at): None for e in events if e.kind == "raised"}
    cleared = {(e.rule, e.tag, e.raised_at): e.at - START for e in events if e.kind == "cleared"}
    return sorted((r, t, at - START, cleared.get((r, t, at))) for (r, t, at) in raised)


async def run_line(scenario: Scenario, rules: list[Rule], db: Path, broker: tuple[str, int] | None) -> int:
    """Serve the line and run the pipeline until every expected alert cleared; the start."""
    run = uuid.uuid4().hex[:10]
    stop = asyncio.Event()
    clears = sum(1 for a in scenario.expected_alerts if a.cleared_at is not None)
    seen: list[AlertEvent] = []

    def record(ev: AlertEvent) -> None:
        seen.append(ev)
        if sum(1 for e in seen if e.kind == "cleared") >= clears:
            stop.set()

    async with SimulatedLine(
        scenario, mqtt_broker=broker, mqtt_prefix=f"pptest/{run}", mqtt_group=f"pptest-{run}"
    ) as line:
        plant = PlantConfig(
            sources=line.sources(mqtt={"client_id": f"pptest-{run}", "persistent": False}),
            store=StoreConfig(url=f"sqlite:///{db}", spool=SpoolConfig(dir=db.with_suffix(".spool"))),
        )
        await run_pipeline(plant, rules, stop=stop, duration=scenario.duration / 1e9 + 10, on_alert=record)
        return line.start_ns


async def assert_stored(scenario: Scenario, start_ns: int, db: Path) -> None:
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        alerts = sorted(await store.alerts(), key=lambda a: a.raised_at)
    finally:
        await store.close()
    got = [(a.rule, a.tag, a.raised_at - start_ns, a.cleared_at) for a in alerts]
    want = sorted(scenario.expected_alerts, key=lambda e: e.raised_at)
    assert [(g[0], g[1]) for g in got] == [(w.rule, w.tag) for w in want], "\n".join(map(str, got))
    for alert, exp in zip(alerts, want, strict=True):
        assert abs(alert.raised_at - (start_ns + exp.raised_at)) <= TOLERANCE, (alert.tag, got)
        assert exp.cleared_at is not None and alert.cleared_at is not None, (alert.tag, got)
        assert abs(alert.cleared_at - (start_ns + exp.cleared_at)) <= TOLERANCE, (alert.tag, got)


@pytest.mark.parametrize("fmt", ["json", "sparkplug"])
async def test_three_protocols_on_mosquitto(
    mqtt_broker: tuple[str, int], tmp_path: Path, fmt: Literal["json", "sparkplug"]
) -> None:
    scenario, rules = make(tmp_path, fmt)
    want = [(a.rule, a.tag, a.raised_at, a.cleared_at) for a in scenario.expected_alerts]
    assert alerts_over_truth(scenario, rules) == sorted(want)
    start = await run_line(scenario, rules, tmp_path / "three.db", mqtt_broker)
    await assert_stored(scenario, start, tmp_path / "three.db")


async def test_three_protocols_on_the_embedded_broker(tmp_path: Path) -> None:
    scenario, rules = make(tmp_path, "sparkplug")
    start = await run_line(scenario, rules, tmp_path / "embedded.db", None)
    # amqtt 0.12 leaves the server side of a cleanly closed client to the garbage collector
    # (as tests/collectors/mqtt/conftest.py notes): collect it here, quietly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    await assert_stored(scenario, start, tmp_path / "embedded.db")
