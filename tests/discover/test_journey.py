"""The new user's first hour, end to end on real components: three simulated devices (OPC UA,
Modbus TCP, MQTT JSON on Mosquitto), ``discover`` for each, the three outputs pasted into one
plant.yaml with one rule, ``check``, then the pipeline raises each device's scripted fault."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from discover_helpers import check, run_cli

from plantpulse.alerts import AlertEvent
from plantpulse.app import run_pipeline
from plantpulse.config import load_config
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.scenario import Scenario

pytestmark = pytest.mark.slow

SCENARIO = """\
name: journey
asset: line1
welders: 3
seed: 7
tick: 100ms
duration: 4s
loop: true
protocols: {opcua: [weld01], modbus: [weld02], mqtt: [weld03]}
faults:
  - {welder: weld01, kind: step, signal: current, start: 2s, duration: 1500ms, magnitude: 12}
  - {welder: weld02, kind: step, signal: current, start: 2s, duration: 1500ms, magnitude: 12}
  - {welder: weld03, kind: step, signal: current, start: 2s, duration: 1500ms, magnitude: 12}
"""

RULES = """\
rules:
  - id: current-high
    description: 焊接电流过高
    tag: line1/weld*/current
    above: 188
    for: 500ms
    severity: high
"""


def items(text: str) -> str:
    """The list items of a discover output: what a user pastes under ``sources:``."""
    return text.split("\nsources:\n", 1)[1]


async def test_from_three_devices_to_three_alerts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    scenario = Scenario.model_validate(yaml.safe_load(SCENARIO))
    prefix = f"pp-{uuid.uuid4().hex[:8]}/sim"
    host, port = mqtt_broker
    async with SimulatedLine(scenario, mqtt_broker=mqtt_broker, mqtt_prefix=prefix) as line:
        assert line.opcua is not None
        code, opcua, err = await run_cli(capsys, "discover", "opcua", line.opcua.endpoint)
        assert code == 0, err
        row = ["line1/weld01/current", "nsu=urn:plantpulse:simulator;s=line1/weld01/current", "Double"]
        assert row in [r.split()[:3] for r in err.splitlines()]

        device = line.modbus[0].address.removeprefix("tcp://")
        code, out, err = await run_cli(
            capsys, "discover", "modbus", device, "--unit", "1", "--address", "0", "--count", "13"
        )
        assert (code, out) == (0, "")  # the table, for the user to recognise the current ...
        assert "float64 at  ABCD" in err and "--pick ADDRESS:TYPE" in err
        code, modbus, err = await run_cli(
            capsys, "discover", "modbus", device, "--unit", "1", "--address", "0", "--count", "13",
            "--pick", "0:float64:ABCD=line1/weld02/current",
        )  # fmt: skip
        assert code == 0, err

        code, mqtt, err = await run_cli(
            capsys, "discover", "mqtt", "--host", host, "--port", str(port), "--topic", f"{prefix}/#",
            "--seconds", "1.5", "--source", f"mqtt-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        assert code == 0, err
        assert f"{prefix}/line1/weld03/+" in err

        for name, text in (("opcua", opcua), ("modbus", modbus), ("mqtt", mqtt)):
            (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
            check(capsys, tmp_path / f"{name}.yaml")  # each output passes check as printed
        (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
        plant = tmp_path / "plant.yaml"
        store = f"sqlite:///{tmp_path / 'plant.db'}"
        plant.write_text(
            opcua + items(modbus) + items(mqtt) + f"rules: [rules.yaml]\nstore: {{url: '{store}'}}\n",
            encoding="utf-8",
        )
        assert check(capsys, plant) == f"{plant}: ok: 3 sources, 8 tags, 1 rules in 1 files\n"

        loaded = load_config(plant)
        raised: dict[str, AlertEvent] = {}
        stop = asyncio.Event()
        wanted = {f"line1/weld0{i}/current" for i in (1, 2, 3)}

        def on_alert(ev: AlertEvent) -> None:
            if ev.kind == "raised":
                raised.setdefault(ev.tag, ev)
            if wanted <= set(raised):
                stop.set()

        run = asyncio.create_task(
            run_pipeline(loaded.plant, load_rule_files(loaded.rule_files), stop=stop, on_alert=on_alert)
        )
        try:
            async with asyncio.timeout(30):
                await stop.wait()
        finally:
            stop.set()
            await run
    assert set(raised) == wanted
    tick = scenario.tick
    for ev in raised.values():  # raised 500 ms into a fault window of the looping scenario
        into = (ev.raised_at - line.start_ns) % scenario.duration
        assert 2_000_000_000 + 500_000_000 <= into <= 3_500_000_000 + tick, (ev.tag, into)
        assert ev.rule == "current-high" and ev.severity == "high"


async def test_sparkplug_edge_nodes_are_proposed_with_their_metrics(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    text = SCENARIO.replace(
        "protocols: {opcua: [weld01], modbus: [weld02], mqtt: [weld03]}",
        "protocols: {mqtt: [weld01..weld03]}",
    )
    scenario = Scenario.model_validate(yaml.safe_load(text + "mqtt_format: sparkplug\n"))
    group = f"pp{uuid.uuid4().hex[:8]}"
    host, port = mqtt_broker
    async with SimulatedLine(scenario, mqtt_broker=mqtt_broker, mqtt_group=group):
        code, out, err = await run_cli(
            capsys, "discover", "mqtt", "--host", host, "--port", str(port), "--topic", f"spBv1.0/{group}/#",
            "--seconds", "1", "--rebirth",
        )  # fmt: skip
    assert code == 0, err
    [source] = yaml.safe_load(out)["sources"]
    assert (source["format"], source["sparkplug"]) == ("sparkplug", {"group": group, "edge_nodes": ["line1"]})
    assert "21 metrics" in err and "-> line1/weld03/current" in err
    (tmp_path / "plant.yaml").write_text(out, encoding="utf-8")
    check(capsys, tmp_path / "plant.yaml")
