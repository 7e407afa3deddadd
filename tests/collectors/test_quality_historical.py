"""Historical data end to end: a Sparkplug edge node replays its buffer (metrics flagged
``is_historical``) through the real MQTT collector, the runner built by ``build_runner`` and
the real pipeline (rules engine, SQLite store, PushNotifier -> local PushReceiver). The replay
raises and clears an alert that is stored and journaled but never pushed; a live raise right
after it is pushed, which shows the receiver works. JSON messages older than their tag's last
live sample go to ``put_historical`` too. Waits are events and the pipeline's drain."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from collector_helpers import RecordingSink
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.registry import build_runner
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.collectors.sparkplug import DataType, MetricValue, encode_payload
from plantpulse.config import SpoolConfig
from plantpulse.notifier.push import PushNotifier
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import TagRegistry
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline
from plantpulse.timefmt import NS_PER_MS, NS_PER_S

pytestmark = pytest.mark.mqtt

T0_MS = time.time_ns() // NS_PER_MS - 60_000  # a minute ago: well inside every source's accept window
RULES = """\
rules:
  - {id: hot, tag: "line1/*/temp", above: 80, severity: high, message: "hot {value:.0f}"}
"""


def unique(prefix: str) -> str:
    import os
    import uuid

    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def publisher(mqtt_broker: tuple[str, int]) -> AsyncIterator[mqtt.Client]:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
    await asyncio.to_thread(pub.connect, *mqtt_broker)
    pub.loop_start()
    yield pub
    pub.disconnect()
    pub.loop_stop()


def publish(pub: mqtt.Client, topic: str, payload: bytes) -> None:
    pub.publish(topic, payload, qos=1).wait_for_publish(5)


async def test_sparkplug_replay_is_stored_and_evaluated_but_not_pushed(
    mqtt_broker: tuple[str, int], publisher: mqtt.Client, tmp_path: Path
) -> None:
    group = unique("grp")
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "edge", "host": mqtt_broker[0], "port": mqtt_broker[1],
            "client_id": unique("col"), "persistent": False, "format": "sparkplug",
            "sparkplug": {"group": group, "tag": "line1/{device}/{metric}"},
        }
    )  # fmt: skip
    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.open()
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool"), open_store=False)
    await writer.start()
    tags = TagRegistry()
    async with PushReceiver() as rx:
        notifier = PushNotifier([rx.url], backoff=0.01)
        notifier.start()
        pipeline = Pipeline(Engine(load_rules_text(RULES), tags), tags, writer, notifier)
        stop = asyncio.Event()
        processing = asyncio.create_task(pipeline.run(stop))
        runner = build_runner(source, pipeline.sink)
        collecting = asyncio.create_task(runner.run())
        collector = runner.collector
        assert isinstance(collector, MqttCollector)
        try:
            async with asyncio.timeout(10):
                await collector.subscribed.wait()
            base = f"spBv1.0/{group}"
            publish(publisher, f"{base}/NBIRTH/n1", encode_payload(T0_MS, 0, [
                MetricValue("bdSeq", None, DataType.INT64, 1),
                MetricValue("Node Control/Rebirth", None, DataType.BOOLEAN, False),
            ]))  # fmt: skip
            publish(publisher, f"{base}/DBIRTH/n1/oven1", encode_payload(T0_MS, 1, [
                MetricValue("temp", 1, DataType.DOUBLE, 20.0, timestamp_ms=T0_MS),
            ]))  # fmt: skip
            replay = [
                MetricValue(None, 1, DataType.DOUBLE, v, timestamp_ms=T0_MS + i * 1000, historical=True)
                for i, v in enumerate([95.0, 96.0, 97.0, 20.0], start=1)
            ]
            publish(publisher, f"{base}/DDATA/n1/oven1", encode_payload(T0_MS + 5000, 2, replay))
            live = [MetricValue(None, 1, DataType.DOUBLE, 99.0, timestamp_ms=T0_MS + 10_000)]
            publish(publisher, f"{base}/DDATA/n1/oven1", encode_payload(T0_MS + 10_000, 3, live))
            await rx.wait_for(1)  # the live raise
        finally:
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)
            stop.set()
            await processing  # drains the queue: everything delivered is evaluated and written
            await notifier.stop()  # delivers whatever was submitted
    try:
        await writer.flush()
        assert len(rx.received) == 1 and "hot" in json.dumps(rx.received[0].body)
        alerts = sorted(await store.alerts(), key=lambda a: a.raised_at)
        s = NS_PER_S
        t0 = T0_MS * NS_PER_MS
        assert [(a.raised_at - t0, a.cleared_at and a.cleared_at - t0) for a in alerts] == [
            (1 * s, 4 * s),  # raised and cleared by the replay: stored, journaled, not pushed
            (10 * s, None),  # live: pushed
        ]
        assert pipeline.stats.historical == 4 and runner.status().historical == 4
        buckets = await store.series("line1/oven1/temp", t0, t0 + 11 * s, s)
        assert sum(b.count for b in buckets) >= 5  # the replayed samples are in the store
    finally:
        await writer.stop()
        await store.close()


async def test_json_older_than_the_last_live_sample_is_historical(
    mqtt_broker: tuple[str, int], publisher: mqtt.Client
) -> None:
    prefix = unique("hist")
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "gw", "host": mqtt_broker[0], "port": mqtt_broker[1],
            "client_id": unique("col"), "persistent": False,
            "subscriptions": [{"topic": f"{prefix}/+", "tag": "line1/{1}/v", "value": "$.v",
                               "timestamp": "$.ts", "timestamp_format": "ms"}],
        }
    )  # fmt: skip
    sink = RecordingSink()
    collector = MqttCollector(source)
    runner = CollectorRunner(collector, sink)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            await collector.subscribed.wait()
        publish(publisher, f"{prefix}/a", json.dumps({"ts": T0_MS + 10_000, "v": 1}).encode())
        await sink.wait_for(lambda s: bool(s.samples))
        publish(publisher, f"{prefix}/a", json.dumps({"ts": T0_MS + 2_000, "v": 2}).encode())  # buffer
        publish(publisher, f"{prefix}/a", json.dumps({"ts": T0_MS + 11_000, "v": 3}).encode())
        await sink.wait_for(lambda s: len(s.samples) == 2 and len(s.historical) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [x.value for x in sink.samples] == [1, 3] and [x.value for x in sink.historical] == [2]
    assert runner.status().historical == 1
