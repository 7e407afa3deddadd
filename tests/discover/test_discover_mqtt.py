"""``discover mqtt`` on Mosquitto: messages with several values become one source whose
subscriptions map them as fields, and the collector reading that output as printed delivers
one sample per value."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from collector_helpers import RecordingSink
from discover_helpers import check, run_cli
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource

pytestmark = pytest.mark.slow


async def test_several_values_per_message_one_source_collected_as_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    prefix = f"pp-{uuid.uuid4().hex[:10]}"
    ms = time.time_ns() // 1_000_000
    published = {  # retained: each subscriber gets them on subscribing, no race with a publisher
        f"{prefix}/line1/weld01": {"ts": ms, "current": 180.5, "voltage": 24.0, "current_sp": 180},
        f"{prefix}/line1/weld02": {"ts": ms, "current": 175.0, "voltage": 23.5, "current_sp": 175},
        f"{prefix}/gw/weld03/data": {"ts": ms, "d": {"current": 190.0, "running": True, "mode": "auto"}},
    }
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
    await asyncio.to_thread(pub.connect, host, port)
    pub.loop_start()
    try:
        for topic, payload in published.items():
            await asyncio.to_thread(
                pub.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish, 5
            )
        code, out, err = await run_cli(
            capsys, "discover", "mqtt", "--host", host, "--port", str(port), "--topic", f"{prefix}/#",
            "--seconds", "0.5", "--source", "m",
        )  # fmt: skip
        assert code == 0, err
        [source] = yaml.safe_load(out)["sources"]
        assert source["subscriptions"] == [
            {"topic": f"{prefix}/gw/weld03/data", "asset": "gw/weld03/data", "fields": "$.d.*",
             "timestamp": "$.ts", "timestamp_format": "ms"},
            {"topic": f"{prefix}/line1/+", "asset": "line1/{2}",
             "fields": {"current": "{asset}/current", "voltage": "{asset}/voltage",
                        "current_sp": "{asset}/current_sp"},
             "timestamp": "$.ts", "timestamp_format": "ms"},
        ]  # fmt: skip
        (tmp_path / "plant.yaml").write_text(out, encoding="utf-8")
        check(capsys, tmp_path / "plant.yaml")

        listen = MqttSource.model_validate(source | {"client_id": f"{prefix}-col", "persistent": False})
        sink = RecordingSink()
        task = asyncio.create_task(MqttCollector(listen).run(sink))
        try:
            await sink.wait_for(lambda s: len(s.samples) >= 8)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        for topic in published:  # clear the retained messages
            pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
    assert not sink.errors
    assert {s.tag: s.value for s in sink.samples} == {
        "line1/weld01/current": 180.5,
        "line1/weld01/voltage": 24.0,
        "line1/weld01/current_sp": 180.0,
        "line1/weld02/current": 175.0,
        "line1/weld02/voltage": 23.5,
        "line1/weld02/current_sp": 175.0,
        "gw/weld03/data/current": 190.0,
        "gw/weld03/data/running": 1.0,
    }
    assert {s.ts for s in sink.samples} == {ms * 1_000_000}
