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


def test_simulate_serves_three_protocols_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: cli\nwelders: 3\ntick: 100ms\nduration: 1m\nprotocols: {modbus: [weld02], mqtt: [weld03]}\n",
        encoding="utf-8",
    )
    ports = ["--opcua-port", "0", "--modbus-port", "0", "--mqtt-port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "plantpulse", "simulate", "--scenario", str(path), *ports],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # blocks until the last simulator reports what it serves
        lines.append(line)
        if "publishing to" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=20)
    out = "".join(lines)
    assert proc.returncode == 0, out + rest
    assert "/plantpulse: 1 welders, 7 tags" in out
    assert "serving modbus tcp://127.0.0.1:" in out and "(weld02 = unit 1)" in out
    assert "publishing to embedded broker mqtt://127.0.0.1:" in out and "JSON on plantpulse/sim/line1/" in out
    assert "stopping" in rest


def replay(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``plantpulse simulate --replay`` of three samples of two tags, run to its end."""
    path = tmp_path / "r.csv"
    path.write_text("ts,tag,value\n0,a/b/x,1.5\n0.5,a/b/y,2\n1,a/b/x,3\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "plantpulse", "simulate", "--replay", str(path), *options],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_replay_prints_its_map_and_finishes(tmp_path: Path) -> None:
    options = ["--protocol", "modbus", "--modbus-port", "0", "--speed", "max", "--duration", "0.5"]
    done = replay(tmp_path, *options)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "a/b/x -> unit 1 holding 0-1 float32 ABCD",
        "a/b/y -> unit 1 holding 2-3 float32 ABCD",
    ]
    assert "replay finished: 3 samples" in done.stderr


def test_an_mqtt_replay_to_a_broker_exits_when_every_message_is_acknowledged(
    tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    # no --duration: it ends by itself
    done = replay(tmp_path, "--protocol", "mqtt", "--mqtt-broker", f"{host}:{port}", "--speed", "max")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "a/b/x -> plantpulse/replay/a/b/x",
        "a/b/y -> plantpulse/replay/a/b/y",
    ]
    assert "replay finished: 3 samples" in done.stderr
    assert f"every message acknowledged by mqtt://{host}:{port}" in done.stderr
