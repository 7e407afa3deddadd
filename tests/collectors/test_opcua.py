"""The OPC UA collector against the real simulator on a free loopback port (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest
from collector_helpers import RecordingSink

from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.config import OpcUaSource
from plantpulse.samples import Quality
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.opcua import OpcUaSimulator

pytestmark = pytest.mark.slow
S = 1_000_000_000


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def source(
    endpoint: str, tags: list[tuple[str, str]] | list[dict[str, object]], **options: object
) -> OpcUaSource:
    items = [{"name": t[0], "node": t[1]} if isinstance(t, tuple) else t for t in tags]
    return OpcUaSource.model_validate(
        {"kind": "opcua", "name": "weld-opcua", "endpoint": endpoint, "tags": items, **options}
    )


async def test_values_source_timestamps_and_qualities(scenario: sc.Scenario, sink: RecordingSink) -> None:
    async with OpcUaSimulator(scenario) as sim:
        runner = CollectorRunner(OpcUaCollector(sc.opcua_source(scenario, sim.endpoint)), sink)
        task = asyncio.create_task(runner.run())
        until = sim.start_ns + 35 * scenario.tick
        await sink.wait_for(
            lambda s: any(x.ts >= until and x.tag == "line1/weld01/current" for x in s.samples)
        )
        await cancel(task)
    truth = {(s.ts, s.tag): s for s in sc.truth_samples(scenario, sim.start_ns, ticks=40)}
    got = [s for s in sink.samples if s.ts <= until]
    assert got
    for s in got:  # every value received is the scenario's value at that tick, with its timestamp
        want = truth[(s.ts, s.tag)]
        assert s.quality == want.quality
        assert (math.isnan(s.value) and math.isnan(want.value)) or s.value == want.value
    # and nothing was lost after the subscription's initial values
    first = max(min(s.ts for s in got if s.tag == tag) for tag in scenario.tag_names())
    expected = {k for k in truth if first < k[0] <= until}
    assert expected <= {(s.ts, s.tag) for s in got}
    bad = [s for s in got if s.tag == "line1/weld02/current" and s.quality == Quality.BAD]
    assert bad and all(
        sim.start_ns + 5 * scenario.tick <= s.ts < sim.start_ns + 15 * scenario.tick for s in bad
    )
    assert runner.status().bad_samples == len([s for s in sink.samples if s.quality == Quality.BAD])


async def test_deadband_is_honoured(scenario: sc.Scenario, sink: RecordingSink) -> None:
    async with OpcUaSimulator(scenario) as sim:
        tags = [
            {"name": "line1/weld01/current", "node": sc.node_id("line1/weld01/current"), "deadband": 5.0},
            {"name": "line1/weld02/current", "node": sc.node_id("line1/weld02/current")},
        ]
        task = asyncio.create_task(OpcUaCollector(source(sim.endpoint, tags)).run(sink))
        step_end = sim.start_ns + 3 * S
        await sink.wait_for(lambda s: any(x.ts >= step_end + S // 2 for x in s.samples))
        await cancel(task)
    banded = [s.ts - sim.start_ns for s in sink.samples if s.tag == "line1/weld01/current"]
    # noise (±0.8 A) stays inside the 5 A deadband: only the initial value and the two step edges
    assert banded[1:] == [2 * S, 3 * S]
    assert len([s for s in sink.samples if s.tag == "line1/weld02/current"]) > 20


async def test_heartbeats_advance_while_values_are_flat(scenario: sc.Scenario, sink: RecordingSink) -> None:
    async with OpcUaSimulator(scenario) as sim:
        flat = [(t, sc.node_id(t)) for t in ("line1/weld01/current_sp", "line1/weld01/running")]
        src = source(sim.endpoint, flat, heartbeat="300ms", publishing_interval="100ms")
        task = asyncio.create_task(OpcUaCollector(src).run(sink))
        await sink.wait_for(lambda s: len(s.heartbeats) >= 5)
        await cancel(task)
    assert len(sink.samples) == 2  # the initial values, then nothing changes
    hb = sink.heartbeats
    assert hb == sorted(hb) and len(set(hb)) == len(hb)
    assert hb[-1] - hb[1] >= 2 * 250_000_000  # they keep pace with time (keep-alives every ~300 ms)
    assert hb[-1] > max(s.ts for s in sink.samples)


async def test_unknown_nodes_and_namespaces_are_counted_and_the_rest_flows(
    scenario: sc.Scenario, sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    async with OpcUaSimulator(scenario) as sim:
        tags = [
            ("line1/weld01/voltage", sc.node_id("line1/weld01/voltage")),
            ("line1/weld09/voltage", "ns=2;s=line1/weld09/voltage"),
            ("line1/weld01/oops", "nsu=urn:nowhere;s=line1/weld01/voltage"),
            ("line1/weld02/oops", "nsu=urn:nowhere;i=7"),
        ]
        runner = CollectorRunner(OpcUaCollector(source(sim.endpoint, tags)), sink)
        task = asyncio.create_task(runner.run())
        await sink.wait_for(lambda s: len(s.samples) >= 5)
        await cancel(task)
    assert runner.status().errors == {"tag": 3}
    messages = sorted({str(e) for e in sink.errors})
    assert len(messages) == 2  # one text for the unknown namespace, whatever its number of tags
    assert "tag line1/weld09/voltage: node ns=2;s=line1/weld09/voltage: BadNodeIdUnknown" in messages[1]
    assert messages[0] == (
        f"weld-opcua ({sim.endpoint}): namespace 'urn:nowhere' is not on the server (2 tags not subscribed, "
        "e.g. line1/weld01/oops); it has: urn:plantpulse:simulator:server (ns=1), "
        "urn:plantpulse:simulator (ns=2)"
    )
    assert sum("urn:nowhere" in r.getMessage() for r in caplog.records) == 1
    assert {s.tag for s in sink.samples} == {"line1/weld01/voltage"}
    assert runner.status().available is True


async def test_nsu_node_ids_are_resolved_again_at_every_connect(
    scenario: sc.Scenario, sink: RecordingSink
) -> None:
    """The simulator's namespace is at index 3 (another one registered first), then at 2 after a
    restart: the nsu= tag follows it, the hard-coded ns=2 tag is only right the second time."""
    nsu = "nsu=urn:plantpulse:simulator;s=line1/weld01/voltage"
    tags = [("line1/weld01/voltage", nsu), ("fixed/voltage", "ns=2;s=line1/weld01/voltage")]
    sim = OpcUaSimulator(scenario, namespaces=("urn:plantpulse:test:first",))
    async with sim:
        runner = CollectorRunner(
            OpcUaCollector(source(sim.endpoint, tags, heartbeat="200ms")),
            sink,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        task = asyncio.create_task(runner.run())
        await sink.wait_for(lambda s: len(s.samples) >= 3)
        assert {s.tag for s in sink.samples} == {"line1/weld01/voltage"}
        assert "BadNodeIdUnknown" in str(sink.errors[0])
        await sim.stop()
        await sink.wait_for(lambda s: runner.status().available is False)
        stopped_at = max(s.ts for s in sink.samples)
        sim.namespaces = ()
        await sim.start()
        both = {"line1/weld01/voltage", "fixed/voltage"}
        await sink.wait_for(lambda s: {x.tag for x in s.samples if x.ts > stopped_at} == both)
        await cancel(task)
    after = [s for s in sink.samples if s.ts > stopped_at and s.tag == "line1/weld01/voltage"]
    assert after and all(s.quality == Quality.GOOD for s in after)


async def test_restart_reconnects_resubscribes_and_logs_once(
    scenario: sc.Scenario, sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantpulse.collectors.runner")
    async with OpcUaSimulator(scenario) as sim:
        src = sc.opcua_source(scenario, sim.endpoint, signals=("voltage",), heartbeat="200ms")
        runner = CollectorRunner(OpcUaCollector(src), sink, backoff=Backoff(initial=0.05, maximum=0.2))
        task = asyncio.create_task(runner.run())
        await sink.wait_for(lambda s: len(s.samples) >= 4)
        await sim.stop()
        await sink.wait_for(lambda s: runner.status().available is False and runner.status().reconnects >= 3)
        stopped_at = max(s.ts for s in sink.samples)
        await sim.start()
        await sink.wait_for(lambda s: sum(x.ts > stopped_at for x in s.samples) >= 10)
        await cancel(task)
    status = runner.status()
    assert status.available is True and status.reconnects >= 3
    lines = [r.getMessage() for r in caplog.records if r.name == "plantpulse.collectors.runner"]
    assert sum(": unavailable: " in m for m in lines) == 1, lines
    assert sum("available again" in m for m in lines) == 1, lines
    assert lines[0].startswith(f"weld-opcua ({sim.endpoint}): unavailable: ")


async def test_unreachable_endpoint_backs_off_while_others_run(
    scenario: sc.Scenario, sink: RecordingSink, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    delays: list[float] = []
    enough = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 4:
            enough.set()
            await asyncio.Event().wait()  # park: retrying at full speed would starve the live source
        await asyncio.sleep(0)

    dead = source(f"opc.tcp://127.0.0.1:{port}", [("line1/x/y", "ns=2;s=x")], timeout="1s")
    dead_sink = type(sink)()
    dead_runner = CollectorRunner(
        OpcUaCollector(dead), dead_sink, backoff=Backoff(initial=1, maximum=4, jitter=0), sleep=fake_sleep
    )
    async with OpcUaSimulator(scenario) as sim:
        live = CollectorRunner(OpcUaCollector(sc.opcua_source(scenario, sim.endpoint, name="live")), sink)
        tasks = [asyncio.create_task(dead_runner.run()), asyncio.create_task(live.run())]
        async with asyncio.timeout(10):
            await enough.wait()
        await sink.wait_for(lambda s: len(s.samples) > 20)
        for t in tasks:
            await cancel(t)
    assert delays[:4] == [1, 2, 4, 4]
    assert dead_runner.status().errors["unavailable"] >= 4 and dead_runner.status().available is False
    assert "connection refused" in (dead_runner.status().last_error or "")
    assert (
        sum(
            "unavailable" in r.getMessage()
            for r in caplog.records
            if r.name == "plantpulse.collectors.runner" and r.levelno == logging.WARNING
        )
        == 1
    )
