"""The whole chain on real parts: an OPC UA simulator, ``plantpulse run --role collect`` (the
real collector runner), Tansu, an evaluate worker and the sink, all as subprocesses of the
CLI. The scenario's two faults give exactly its two alerts, within one publishing interval
and 50 ms of the truth (as tests/e2e/test_opcua_pipeline.py asks of the single process).
The collector runs only the source it is told to (``--source``); the plant's other source,
an unreachable device, is another collector's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from plantpulse.config import OpcUaSource
from plantpulse.scaleout.tansu import TansuBroker
from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import load_scenario, opcua_source
from plantpulse.store.sqlite import SQLiteStore
from tests.scaleout.conftest import Role, create_topics, plant_of, roles, until
from tests.scaleout.test_deployment import cleared_alerts, stored_samples

pytestmark = pytest.mark.slow

SCENARIO = """\
name: kafka-e2e
asset: line1
welders: 2
seed: 7
tick: 100ms
duration: 10s
faults:
  - {welder: weld01, kind: step, signal: current, start: 1s, duration: 3s, magnitude: 8}
  - {welder: weld02, kind: step, signal: current, start: 5s, duration: 3s, magnitude: -8}
expected_alerts:
  - {rule: weld-current-deviation, tag: line1/weld01/current, raised_at: 3s, cleared_at: 4500ms}
  - {rule: weld-current-deviation, tag: line1/weld02/current, raised_at: 7s, cleared_at: 8500ms}
"""

RULES = """\
rules:
  - id: weld-current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 2s
    clear: {limit: 4, for: 500ms}
    severity: high
    message: "焊接电流偏差 {deviation:+.1f} A"
"""

TOLERANCE = 100_000_000 + 50_000_000
LEAD = 15_000_000_000  # the scenario starts this long after the simulator: the roles start meanwhile


async def test_collectors_to_store_through_kafka(tmp_path: Path, broker: TansuBroker) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    scenario = load_scenario(tmp_path / "scenario.yaml")
    now = time.time_ns()
    async with OpcUaSimulator(scenario, start_ns=now - now % 1_000_000 + LEAD) as sim:
        source = opcua_source(scenario, sim.endpoint, signals=("current", "current_sp"))
        elsewhere = OpcUaSource.model_validate(
            {"kind": "opcua", "name": "elsewhere", "endpoint": "opc.tcp://127.0.0.1:9",
             "tags": [{"name": "line2/weld09/current", "node": "ns=2;s=line2/weld09/current"}]}
        )  # fmt: skip
        doc = {
            "sources": [s.model_dump(mode="json", exclude_none=True) for s in (source, elsewhere)],
            "rules": ["rules.yaml"],
            "store": {"url": f"sqlite:///{tmp_path / 'plant.db'}"},
            "kafka": {"brokers": [broker.bootstrap], "partitions": 2, "session_timeout": "3s"},
        }
        config = tmp_path / "plant.yaml"
        config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        await create_topics(plant_of(config))
        collect = Role("collect", config, extra=["--source", source.name])
        async with roles(Role("evaluate", config), Role("sink", config), collect) as started:
            await started[0].wait_for("evaluating partitions")
            await until(lambda: stored_samples(tmp_path / "plant.db"), 30)  # the chain carries tick 0
            assert time.time_ns() < sim.start_ns + 500_000_000, "the roles took too long to start"
            await cleared_alerts(tmp_path / "plant.db", 2)
        start = sim.start_ns
    store = SQLiteStore(f"sqlite:///{tmp_path / 'plant.db'}")
    await store.open()
    try:
        alerts = sorted(await store.alerts(), key=lambda a: a.raised_at)
        journals = [[j.action for j in await store.journal(a.id)] for a in alerts]
    finally:
        await store.close()
    want = sorted(scenario.expected_alerts, key=lambda a: a.raised_at)
    assert [(a.rule, a.tag) for a in alerts] == [(w.rule, w.tag) for w in want]
    for a, w in zip(alerts, want, strict=True):
        assert abs(a.raised_at - (start + w.raised_at)) <= TOLERANCE
        assert a.cleared_at is not None and w.cleared_at is not None
        assert abs(a.cleared_at - (start + w.cleared_at)) <= TOLERANCE
        assert a.message.startswith("焊接电流偏差 ")
    assert journals == [["raised", "cleared"]] * 2
    assert not [line for line in collect.lines if "elsewhere" in line]
