"""End to end on real parts: asyncua simulator -> collector -> stream -> engine -> SQLite -> pushes.

The scenario's faults must produce exactly its expected alerts, raised within one publishing
interval plus 50 ms of the scenario's truth, and no others; the same with OPC UA security on;
and across a restart of the simulator between two faults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.app import run_pipeline
from plantpulse.config import NotificationsConfig, OpcUaSource, PlantConfig, SpoolConfig, StoreConfig
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.rules.loader import load_rule_files
from plantpulse.rules.model import Rule
from plantpulse.simulators.certs import make_certificate
from plantpulse.simulators.opcua import SERVER_URI, OpcUaSimulator, SimulatorSecurity
from plantpulse.simulators.scenario import Scenario, load_scenario, opcua_source
from plantpulse.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

SCENARIO = """\
name: e2e
asset: line1
welders: 2
seed: 7
tick: 100ms
duration: 16s
faults:
  - {welder: weld01, kind: step, signal: current, start: 2s, duration: 3s, magnitude: 8}
  - {welder: weld02, kind: step, signal: current, start: 11s, duration: 3s, magnitude: -8}
expected_alerts:
  - {rule: weld-current-deviation, tag: line1/weld01/current, raised_at: 4s, cleared_at: 5500ms}
  - {rule: weld-current-deviation, tag: line1/weld02/current, raised_at: 13s, cleared_at: 14500ms}
"""

RULES = """\
rules:
  - id: weld-current-deviation
    description: 焊接电流偏离设定值超过 ±5 A 持续 2 秒
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 2s
    clear: {limit: 4, for: 500ms}
    severity: high
    message: "焊接电流偏差 {deviation:+.1f} A,已持续 {duration}"
"""

# The restart test's second fault starts 9.5 s after the first clear: the simulator's restart
# and the runner's reconnect backoff (0.5, 1, 2, 4 s, jittered) fit before it even on a loaded
# machine, so the collector sees the fault from its first sample.
RESTART_SCENARIO = (
    SCENARIO.replace("duration: 16s", "duration: 20s")
    .replace("start: 11s", "start: 15s")
    .replace("raised_at: 13s, cleared_at: 14500ms", "raised_at: 17s, cleared_at: 18500ms")
)
PUBLISHING = 100_000_000
TOLERANCE = PUBLISHING + 50_000_000


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return load_scenario(path)


@pytest.fixture
def rules(tmp_path: Path) -> list[Rule]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return load_rule_files([path])


async def run_until_expected(
    scenario: Scenario,
    rules: list[Rule],
    source: OpcUaSource,
    db: Path,
    receiver: PushReceiver,
    *,
    on_alert: Callable[[AlertEvent], None] | None = None,
) -> None:
    """Run the pipeline until every expected alert has cleared (or the scenario has long ended)."""
    stop = asyncio.Event()
    expected_clears = sum(1 for a in scenario.expected_alerts if a.cleared_at is not None)
    seen: list[AlertEvent] = []

    def record(ev: AlertEvent) -> None:
        seen.append(ev)
        if on_alert is not None:
            on_alert(ev)
        if sum(1 for e in seen if e.kind == "cleared") >= expected_clears:
            stop.set()

    plant = PlantConfig(
        sources=[source],
        store=StoreConfig(url=f"sqlite:///{db}", spool=SpoolConfig(dir=db.with_suffix(".spool"))),
        notifications=NotificationsConfig(urls=[receiver.url]),  # type: ignore[list-item]
    )
    timeout = scenario.duration / 1e9 + 10
    await run_pipeline(plant, rules, stop=stop, duration=timeout, on_alert=record)


async def assert_store_matches(scenario: Scenario, start_ns: int, db: Path) -> None:
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        alerts = sorted(await store.alerts(), key=lambda a: a.raised_at)
        assert len(alerts) == len(scenario.expected_alerts), [(a.tag, a.raised_at) for a in alerts]
        for alert, exp in zip(
            alerts, sorted(scenario.expected_alerts, key=lambda e: e.raised_at), strict=True
        ):
            assert (alert.rule, alert.tag) == (exp.rule, exp.tag)
            assert abs(alert.raised_at - (start_ns + exp.raised_at)) <= TOLERANCE
            assert exp.cleared_at is not None and alert.cleared_at is not None
            assert abs(alert.cleared_at - (start_ns + exp.cleared_at)) <= TOLERANCE
            assert alert.message.startswith("焊接电流偏差 ")
            journal = [j.action for j in await store.journal(alert.id)]
            assert journal == ["raised", "cleared"]
    finally:
        await store.close()


async def test_faults_raise_exactly_the_expected_alerts(
    scenario: Scenario, rules: list[Rule], tmp_path: Path
) -> None:
    async with PushReceiver() as rx, OpcUaSimulator(scenario) as sim:
        await run_until_expected(
            scenario, rules, opcua_source(scenario, sim.endpoint), tmp_path / "e2e.db", rx
        )
        start = sim.start_ns
    await assert_store_matches(scenario, start, tmp_path / "e2e.db")
    titles = [r.body["title"] for r in rx.received]
    assert titles == [
        "[HIGH] weld-current-deviation @ line1/weld01",
        "[CLEARED] weld-current-deviation @ line1/weld01",
        "[HIGH] weld-current-deviation @ line1/weld02",
        "[CLEARED] weld-current-deviation @ line1/weld02",
    ]


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_same_alerts_with_security_on(
    scenario: Scenario, rules: list[Rule], tmp_path: Path, mode: str
) -> None:
    server = make_certificate(tmp_path, "server", SERVER_URI, server=True)
    client = make_certificate(tmp_path, "client", "urn:plantpulse:e2e-client")
    security = SimulatorSecurity(server.certificate, server.private_key, users={"焊工": "s3cret"})
    async with PushReceiver() as rx, OpcUaSimulator(scenario, security=security) as sim:
        source = opcua_source(
            scenario,
            sim.endpoint,
            security={
                "policy": "Basic256Sha256",
                "mode": mode,
                "certificate": client.certificate,
                "private_key": client.private_key,
                "server_certificate": server.certificate,
            },
            username="焊工",
            password="s3cret",
        )
        await run_until_expected(scenario, rules, source, tmp_path / "secure.db", rx)
        start = sim.start_ns
    await assert_store_matches(scenario, start, tmp_path / "secure.db")


async def test_simulator_restart_between_faults_is_survived(
    rules: list[Rule], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator goes away after the first alert clears and comes back on the same port:
    the collector reconnects, resubscribes, and the second fault is still caught."""
    path = tmp_path / "scenario.yaml"
    path.write_text(RESTART_SCENARIO, encoding="utf-8")
    scenario = load_scenario(path)
    caplog.set_level(logging.DEBUG, logger="plantpulse")
    restarts: list[asyncio.Task[None]] = []
    async with PushReceiver() as rx, OpcUaSimulator(scenario) as sim:

        def restart_after_first_clear(ev: AlertEvent) -> None:
            if ev.kind == "cleared" and not restarts:
                restarts.append(asyncio.ensure_future(sim.restart()))

        await run_until_expected(
            scenario,
            rules,
            opcua_source(scenario, sim.endpoint),
            tmp_path / "restart.db",
            rx,
            on_alert=restart_after_first_clear,
        )
        start = sim.start_ns
    assert len(restarts) == 1 and restarts[0].done()
    await assert_store_matches(scenario, start, tmp_path / "restart.db")
    outage_logs = [
        r for r in caplog.records if r.levelno == logging.WARNING and "weld-opcua" in r.getMessage()
    ]
    recovery_logs = [r for r in caplog.records if "available again" in r.getMessage()]
    assert len(outage_logs) == 1, [r.getMessage() for r in outage_logs]
    assert len(recovery_logs) == 1
