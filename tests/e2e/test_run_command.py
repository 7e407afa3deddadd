"""``plantpulse run -c plant.yaml`` as a subprocess against the OPC UA simulator.

The config is a user's file on disk: secrets through ``${VAR}``, rule files by glob. The run
stops itself after ``--duration`` and the store holds the alert the scenario promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

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


async def _start_run(config: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", "run", "-c", str(config), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=config.parent,
    )  # fmt: skip


async def test_a_store_that_refuses_for_good_ends_run_with_one_line(tmp_path: Path) -> None:
    """Not an outage (nothing to wait for): a schema from a newer plantpulse. Before, the run
    spooled until --duration and exited 0 as if all were well."""
    db = tmp_path / "plant.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")
    source = {
        "kind": "mqtt",
        "name": "m",
        "host": "127.0.0.1",
        "port": 1,
        "subscriptions": [{"topic": "x/+", "tag": "a/{1}", "value": "$.v"}],
    }  # never reached
    (tmp_path / "plant.yaml").write_text(
        yaml.safe_dump({"sources": [source], "store": {"url": f"sqlite:///{db}"}}), encoding="utf-8"
    )  # fmt: skip
    proc = await _start_run(tmp_path / "plant.yaml", "--duration", "20")
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("plantpulse: store: ") and "schema version 99 is newer" in lines[-1]
    assert "Traceback" not in err.decode()


class Blackhole:
    """A push receiver that accepts a request and never answers: a delivery that hangs."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self._hold = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Blackhole:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted.set()
            await self._hold.wait()
            writer.close()

        self._server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        self.url = f"json://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/push"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._hold.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def _lines_until(stream: asyncio.StreamReader, text: str, within: float) -> list[str]:
    lines: list[str] = []
    async with asyncio.timeout(within):
        while raw := await stream.readline():
            lines.append(raw.decode("utf-8", "replace").rstrip())
            if text in lines[-1]:
                return lines
    raise AssertionError(f"output ended before {text!r}: {lines}")


async def _run_with_a_hung_push(
    tmp_path: Path, broker: tuple[str, int], hole: Blackhole, **stream: str
) -> asyncio.subprocess.Process:
    """``plantpulse run`` whose first alert's push hangs in the receiver, once it does."""
    topic = f"stop-{os.getpid()}-{time.monotonic_ns()}"
    (tmp_path / "rules.yaml").write_text(
        'rules:\n  - {id: hot, tag: "line1/m1/t", above: 50, severity: high}\n', encoding="utf-8"
    )
    plant = {
        "sources": [
            {"kind": "mqtt", "name": "feed", "host": broker[0], "port": broker[1], "persistent": False,
             "client_id": topic,
             "subscriptions": [{"topic": f"{topic}/+", "tag": "line1/m1/{-1}", "value": "$.v"}]}
        ],
        "rules": ["rules.yaml"],
        "store": {"url": f"sqlite:///{tmp_path / 'plant.db'}"},
        "notifications": {"urls": [hole.url], "timeout": "60s"},
        "stream": stream,
    }  # fmt: skip
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(plant), encoding="utf-8")
    proc = await _start_run(tmp_path / "plant.yaml")
    assert proc.stderr is not None
    await _lines_until(proc.stderr, " running: ", 30)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    await asyncio.to_thread(pub.connect, *broker)
    pub.loop_start()
    try:
        async with asyncio.timeout(30):
            while not hole.accepted.is_set():  # "running" comes before the subscription: repeat
                await asyncio.to_thread(pub.publish(f"{topic}/t", '{"v": 99}', qos=1).wait_for_publish, 5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hole.accepted.wait(), 1)
    finally:
        pub.disconnect()
        pub.loop_stop()
    return proc


async def test_a_second_sigterm_exits_at_once(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    async with Blackhole() as hole:
        proc = await _run_with_a_hung_push(tmp_path, mqtt_broker, hole, stop_timeout="30s")
        assert proc.stderr is not None
        try:
            proc.send_signal(signal.SIGTERM)
            await _lines_until(proc.stderr, "SIGTERM received: stopping", 10)  # busy with the push
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 5)
            err = (await proc.stderr.read()).decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 143
    assert err.strip().splitlines()[-1] == "plantpulse: second SIGTERM received, exiting at once"


async def test_a_stop_ends_within_its_deadline_and_says_what_it_left(
    tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    async with Blackhole() as hole:
        proc = await _run_with_a_hung_push(tmp_path, mqtt_broker, hole, stop_timeout="1s")
        try:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
            took = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    assert "stopping: stopping the notifier did not finish within 1 s; going on without it" in err.decode()
    assert took < 30  # the push itself would hang for 60 s (generous: the machine may be busy)
