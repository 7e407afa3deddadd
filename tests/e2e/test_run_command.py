"""``plantpulse run -c plant.yaml`` as a subprocess against the OPC UA simulator.

The config is a user's file on disk: secrets through ``${VAR}``, rule files by glob. The run
stops itself after ``--duration`` and the store holds the alert the scenario promises.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import load_scenario, node_id

pytestmark = pytest.mark.slow

SCENARIO = """\
name: run
asset: line1
welders: 1
seed: 3
tick: 100ms
duration: 14s
faults:
  - {welder: weld01, kind: step, signal: current, start: 5s, duration: 3s, magnitude: 7}
expected_alerts:
  - {rule: weld-current-deviation, tag: line1/weld01/current, raised_at: 7s, cleared_at: 8s}
"""

RULES = """\
rules:
  - id: weld-current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 2s
    severity: high
"""


async def test_run_command_stores_the_expected_alert(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "weld.yaml").write_text(RULES, encoding="utf-8")
    scenario = load_scenario(tmp_path / "scenario.yaml")
    async with OpcUaSimulator(scenario) as sim:
        plant = {
            "site": {"name": "测试车间", "timezone": "Asia/Shanghai"},
            "sources": [
                {
                    "kind": "opcua",
                    "name": "weld-opcua",
                    "endpoint": "${SIM_ENDPOINT}",
                    "tags": [{"name": t, "node": node_id(t)} for t in scenario.tag_names()[:2]],
                }
            ],
            "rules": ["rules/*.yaml"],
            "store": {"url": f"sqlite:///{tmp_path / 'plant.db'}"},
        }
        (tmp_path / "plant.yaml").write_text(yaml.safe_dump(plant, allow_unicode=True), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "plantpulse",
            "run",
            "-c",
            str(tmp_path / "plant.yaml"),
            "--duration",
            "10",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SIM_ENDPOINT": sim.endpoint},
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode("utf-8")
    assert "RAISED  high     weld-current-deviation line1/weld01/current" in text
    assert "CLEARED" in text and "summary: " in text
    with sqlite3.connect(tmp_path / "plant.db") as conn:
        rows = conn.execute("select rule, tag, raised_at, cleared_at from alerts").fetchall()
    assert len(rows) == 1
    rule, tag, raised, cleared = rows[0]
    assert (rule, tag) == ("weld-current-deviation", "line1/weld01/current")
    assert raised - sim.start_ns == pytest.approx(7_000_000_000, abs=150_000_000)
    assert cleared - sim.start_ns == pytest.approx(8_000_000_000, abs=150_000_000)
