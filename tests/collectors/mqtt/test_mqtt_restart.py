"""Broker restart under QoS 1 with a persistent session loses nothing.

Our own Mosquitto (persistence on, in tmp_path) is restarted twice while a persistent
publisher streams numbered QoS 1 messages: once while the collector is connected, once while
the collector is stopped (messages queue at the broker for its session and survive the
restart in mosquitto's persistence file). The runner reconnects the collector with its
backoff; every number must arrive, and the runner records a gap marker after the reconnect."""

from __future__ import annotations

import asyncio
import json

import paho.mqtt.client as mqtt
import pytest
from collector_helpers import RecordingSink
from mqtt_helpers import Mosquitto, data, unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.runner import Backoff, CollectorRunner

pytestmark = pytest.mark.mqtt

N = 300


def _values(sink: RecordingSink) -> set[int]:
    return {int(s.value) for s in data(sink.samples)}


async def test_broker_restart_with_persistent_session_loses_nothing(own_mosquitto: Mosquitto) -> None:
    port = own_mosquitto.port
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "restart", "host": "127.0.0.1", "port": port, "qos": 1,
            "client_id": unique("col"), "persistent": True, "keepalive": "5s",
            "subscriptions": [{"topic": "seq/+", "tag": "t/{1}", "value": "$.n"}],
        }
    )  # fmt: skip
    sink = RecordingSink()
    fast = Backoff(initial=0.05, maximum=0.2, jitter=0.0)

    def runner() -> asyncio.Task[None]:
        return asyncio.create_task(CollectorRunner(MqttCollector(source), sink, backoff=fast).run())

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"), clean_session=False)
    pub.reconnect_delay_set(1, 1)
    await asyncio.to_thread(pub.connect, "127.0.0.1", port)
    pub.loop_start()
    task = runner()
    try:
        await sink.wait_for(lambda s: bool(s.heartbeats) or bool(s.samples))  # connected
        for n in range(N // 3):
            pub.publish("seq/a", json.dumps({"n": n}).encode(), qos=1)
        await sink.wait_for(lambda s: len(_values(s)) >= 10)
        await own_mosquitto.restart()  # 1: the collector is connected
        for n in range(N // 3, 2 * N // 3):
            pub.publish("seq/a", json.dumps({"n": n}).encode(), qos=1)
        await sink.wait_for(lambda s: _values(s) >= set(range(2 * N // 3)), within=20)
        task.cancel()  # 2: the collector goes away; its session keeps collecting at the broker
        await asyncio.gather(task, return_exceptions=True)
        infos = [pub.publish("seq/a", json.dumps({"n": n}).encode(), qos=1) for n in range(2 * N // 3, N)]
        async with asyncio.timeout(10):
            for info in infos:
                await asyncio.to_thread(info.wait_for_publish, 10)  # the broker has them
        await own_mosquitto.restart()
        task = runner()
        await sink.wait_for(lambda s: _values(s) >= set(range(N)), within=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pub.loop_stop()
    assert _values(sink) == set(range(N))
    assert any(s.tag == "_gaps/restart" for s in sink.markers)  # the runner's, via put_markers
