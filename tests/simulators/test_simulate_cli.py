"""``plantpulse simulate`` serves, logs what it serves and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCENARIO = "name: cli\nwelders: 1\ntick: 100ms\nduration: 1m\n"


def test_simulate_serves_and_stops_on_sigterm(tmp_path: Path, port: int) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plantpulse", "simulate", "--scenario", str(path), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # blocks until the simulator reports it is serving
        lines.append(line)
        if "serving" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 0, "".join(lines) + rest
    assert f"serving opc.tcp://127.0.0.1:{port}/plantpulse: 1 welders, 7 tags" in "".join(lines)
    assert "stopping" in rest


def test_simulate_reports_scenario_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("welders: 1\ntick: 100ms\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "plantpulse", "simulate", "--scenario", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and f"{path}:1:1: duration: missing required key 'duration'" in done.stderr
