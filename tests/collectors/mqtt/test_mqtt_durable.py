"""While a ``put`` waits (for the spool's fsync), the bursts that queue behind it go on together
in the next ``put``, and every message is acknowledged only after the ``put`` holding it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import paho.mqtt.client as mqtt
import pytest
from collector_helpers import RecordingSink
from mqtt_helpers import unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.samples import Sample

pytestmark = pytest.mark.mqtt


class SlowSink(RecordingSink):
    """The first put is held until ``release``: a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[int] = []
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def put(self, samples: Sequence[Sample]) -> None:
        if not self.puts:
            self.held.set()
            await self.release.wait()
        self.puts.append(len(samples))
        await super().put(samples)


async def test_bursts_queued_behind_a_slow_put_go_on_in_one_put(mqtt_broker: tuple[str, int]) -> None:
    prefix = unique("durable")
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "m", "host": mqtt_broker[0], "port": mqtt_broker[1],
            "client_id": unique("col"), "persistent": False,
            "subscriptions": [{"topic": f"{prefix}/+", "tag": "line1/{1}/v", "value": "$.v"}],
        }
    )  # fmt: skip
    sink = SlowSink()
    collector = MqttCollector(source)
    task = asyncio.create_task(collector.run(sink))
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
    await asyncio.to_thread(pub.connect, *mqtt_broker)
    pub.loop_start()
    try:
        await asyncio.wait_for(collector.subscribed.wait(), 10)
        pub.publish(f"{prefix}/a", json.dumps({"v": 0}), qos=1).wait_for_publish(5)
        await asyncio.wait_for(sink.held.wait(), 10)
        for i in range(1, 30):  # one message at a time: separate read bursts
            await asyncio.to_thread(
                pub.publish(f"{prefix}/a", json.dumps({"v": i}), qos=1).wait_for_publish, 5
            )
        # the broker lets 20 unacknowledged messages through at most (its in-flight window): they
        # queue in the collector's handoff while the first put is held
        assert collector.status().messages >= 2
        sink.release.set()
        await sink.wait_for(lambda s: len(s.samples) == 30)
    finally:
        pub.disconnect()
        pub.loop_stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [s.value for s in sink.samples] == [float(i) for i in range(30)]
    assert sink.puts[0] == 1 and len(sink.puts) < 10  # the 29 bursts behind it did not take 29 puts
