"""The collector against real brokers: the system Mosquitto and the embedded amqtt broker.

Each test uses its own topic prefix and client ids (parallel runs never share a topic) and
waits on events (the recording sink's ``wait_for``), never on sleeps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from collector_helpers import RecordingSink
from mqtt_helpers import Mosquitto, collecting, data, same, unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MalformedPayload, MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.errors import AuthenticationError, SourceUnavailable
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.mqtt import MqttSimulator, mqtt_source

pytestmark = pytest.mark.mqtt

SHORT = """
name: short
asset: line1
welders: 2
seed: 5
tick: 50ms
duration: 1500ms
faults:
  - {welder: weld01, kind: step, signal: current, start: 500ms, duration: 300ms, magnitude: 9}
  - {welder: weld02, kind: bad_quality, signal: voltage, start: 200ms, duration: 400ms}
"""


@pytest.fixture
def short(tmp_path: Path) -> sc.Scenario:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT, encoding="utf-8")
    return sc.load_scenario(path)


async def play(
    scn: sc.Scenario, host: str, port: int, fmt: Any, sink: RecordingSink, **kw: Any
) -> tuple[list[Any], list[Any]]:
    """(truth, what the collector delivered while the simulator ran: its NDEATH on exit is not truth)."""
    prefix = unique()
    source = mqtt_source(scn, host, port, fmt, prefix=prefix, client_id=unique("col"), **kw)
    async with collecting(source, sink):
        sim = MqttSimulator(scn, host, port, format=fmt, prefix=prefix, **kw)
        async with sim:
            truth = sc.truth_samples(scn, sim.start_ns)
            await sink.wait_for(lambda s: len(data(s.samples)) >= len(truth), within=15)
            got = data(sink.samples)
    return truth, got


@pytest.mark.parametrize(("fmt", "batch"), [("json", False), ("json", True), ("sparkplug", False)])
async def test_simulator_to_collector_equals_truth_on_mosquitto(
    short: sc.Scenario, mqtt_broker: tuple[str, int], fmt: str, batch: bool
) -> None:
    sink = RecordingSink()
    kw = {"batch": batch} if fmt == "json" else {}
    truth, got = await play(short, *mqtt_broker, fmt, sink, **kw)
    extra = {(s.ts, s.tag) for s in got} ^ {(s.ts, s.tag) for s in truth}
    assert same(got, truth), sorted(extra)[:10]
    assert sink.errors == []


@pytest.mark.parametrize("fmt", ["json", "sparkplug"])
async def test_simulator_to_collector_on_the_embedded_broker(
    short: sc.Scenario, embedded_broker: tuple[str, int], fmt: str
) -> None:
    sink = RecordingSink()
    truth, got = await play(short, *embedded_broker, fmt, sink)
    assert same(got, truth)


async def test_malformed_payloads_are_counted_per_topic_and_never_stop(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    prefix = unique()
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "m", "host": host, "port": port, "client_id": unique("col"),
            "subscriptions": [{"topic": f"{prefix}/+", "tag": "t/{1}", "value": "$.v"}],
        }
    )  # fmt: skip
    sink = RecordingSink()
    async with collecting(source, sink) as collector:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
        await asyncio.to_thread(pub.connect, host, port)
        pub.loop_start()
        try:
            for i in range(7):
                pub.publish(f"{prefix}/bad", b"{oops" if i % 2 else b'{"x": 1}', qos=1)
            pub.publish(f"{prefix}/good", json.dumps({"v": 42}).encode(), qos=1)
            await sink.wait_for(lambda s: any(x.tag == "t/good" for x in s.samples))
        finally:
            pub.loop_stop()
            pub.disconnect()
        status = collector.status()
    bad = status.malformed[f"{prefix}/bad"]
    assert bad.count == 7 and len(bad.last) == 5
    assert {r.cause for r in bad.last} == {"json", "path"}
    assert bad.last[-1].payload == b'{"x": 1}'
    assert [s.value for s in sink.samples if s.tag == "t/good"] == [42.0]
    assert len(sink.errors) == 7 and all(isinstance(e, MalformedPayload) for e in sink.errors)
    assert {str(e) for e in sink.errors} == {
        f"m (mqtt://{host}:{port}): malformed payload on {prefix}/bad: json",
        f"m (mqtt://{host}:{port}): malformed payload on {prefix}/bad: path",
    }


async def test_sparkplug_seq_gap_makes_the_collector_ask_for_a_rebirth(
    short: sc.Scenario, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    group = unique("grp")
    source = mqtt_source(short.model_copy(update={"loop": True}), host, port, "sparkplug", group=group,
                         client_id=unique("col"))  # fmt: skip
    sink = RecordingSink()
    async with collecting(source, sink) as collector:
        scn = short.model_copy(update={"loop": True})
        async with MqttSimulator(scn, host, port, format="sparkplug", group=group) as sim:
            await sink.wait_for(lambda s: len(s.samples) > 20)
            sim.skip_seq(3)  # three lost messages: the next DDATA shows a gap
            # "running" never changes: it is only in births, so 4 = DBIRTHs at start and after the rebirth
            await sink.wait_for(lambda s: sum(1 for x in s.samples if x.tag.endswith("/running")) >= 4)
            assert sim.rebirths == 1
        assert collector.status().rebirths_requested == 1


async def test_sparkplug_edge_node_crash_turns_its_tags_bad(
    short: sc.Scenario, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    group = unique("grp")
    scn = short.model_copy(update={"loop": True})
    source = mqtt_source(scn, host, port, "sparkplug", group=group, client_id=unique("col"))
    sink = RecordingSink()
    async with collecting(source, sink):
        sim = MqttSimulator(scn, host, port, format="sparkplug", group=group)
        await sim.start()
        await sink.wait_for(lambda s: len(s.samples) > 14)
        await sim.stop(graceful=True)  # publishes NDEATH (the will would, after a crash)
        await sink.wait_for(
            lambda s: sum(1 for x in s.samples if x.tag.endswith("/running") and x.quality == 2) == 2
        )
    dead = {x.tag for x in sink.samples if x.quality == 2 and x.tag.endswith(("/running", "/current_sp"))}
    assert dead == {f"line1/{w}/{s}" for w in ("weld01", "weld02") for s in ("running", "current_sp")}


async def test_connection_refused_is_source_unavailable(port: int) -> None:
    source = MqttSource.model_validate(
        {
            "kind": "mqtt",
            "name": "m",
            "host": "127.0.0.1",
            "port": port,
            "subscriptions": [{"topic": "#", "tag": "x"}],
        }
    )
    with pytest.raises(SourceUnavailable, match="connection refused"):
        await MqttCollector(source).run(RecordingSink())


async def test_refused_credentials_are_an_authentication_error(tmp_path: Path, port: int) -> None:
    broker = Mosquitto(tmp_path, port, extra="allow_anonymous false\n")
    await broker.start()
    try:
        source = MqttSource.model_validate(
            {"kind": "mqtt", "name": "m", "host": "127.0.0.1", "port": port, "username": "who",
             "password": "no",
             "subscriptions": [{"topic": "#", "tag": "x"}]}
        )  # fmt: skip
        with pytest.raises(AuthenticationError, match=r"refused: (Not authorized|Bad user name)"):
            await MqttCollector(source).run(RecordingSink())
    finally:
        await broker.stop()


async def test_the_raw_hook_takes_every_message_undecoded(mqtt_broker: tuple[str, int]) -> None:
    """``raw=`` (what ``plantpulse discover mqtt`` listens with) gets each message as it came."""
    host, port = mqtt_broker
    prefix = unique()
    source = MqttSource.model_validate(
        {"kind": "mqtt", "name": "raw", "host": host, "port": port, "client_id": unique("col"), "qos": 0,
         "persistent": False, "subscriptions": [{"topic": f"{prefix}/#", "tag": "{topic}"}]}
    )  # fmt: skip
    raw: list[tuple[bytes, bytes]] = []
    got = asyncio.Event()

    def take(topic: bytes, payload: bytes, received: int) -> None:
        raw.append((topic, payload))
        got.set()

    collector = MqttCollector(source, raw=take)
    sink = RecordingSink()
    task = asyncio.create_task(collector.run(sink))
    try:
        await asyncio.wait_for(collector.subscribed.wait(), 10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
        await asyncio.to_thread(pub.connect, host, port)
        pub.loop_start()
        try:
            for i in range(3):
                pub.publish(f"{prefix}/t{i}", b"not json", qos=0)
            async with asyncio.timeout(10):
                while len(raw) < 3:
                    got.clear()
                    await got.wait()
        finally:
            pub.loop_stop()
            pub.disconnect()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(raw) == [(f"{prefix}/t{i}".encode(), b"not json") for i in range(3)]
    assert sink.samples == [] and sink.errors == []  # nothing decoded: raw took them
