"""A recording sink whose waits are events with timeouts (never sleeps), and a small scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from collector_helpers import RecordingSink

from plantpulse.simulators import scenario as sc

SCENARIO = """
name: bench
asset: line1
welders: 2
seed: 11
tick: 100ms
duration: 10m
faults:
  - {welder: weld01, kind: step, signal: current, start: 2s, duration: 1s, magnitude: 9}
  - {welder: weld02, kind: bad_quality, signal: current, start: 500ms, duration: 1s}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> sc.Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return sc.load_scenario(path)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
