"""End to end through Mosquitto and the real pipeline: one JSON message per welder carries the
current, the voltage and the current setpoint; ``fields`` turns each message into three tags and
the deviation rule reads its setpoint from the same message (``{asset}/current_sp``).

The messages wait at the broker for the collector's persistent session (no race with the
subscription); the test ends on the alert events, never on a sleep."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.alerts import AlertEvent
from plantpulse.app import run_pipeline
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.config import PlantConfig, SpoolConfig, StoreConfig
from plantpulse.rules.loader import load_rules_text
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.timefmt import NS_PER_MS

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

T0_MS = (time.time_ns() // 10**9 - 60) * 1000  # a minute ago: inside every source's accept window
RULES = """\
rules:
  - id: weld-current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 3s
    severity: high
"""


def messages() -> list[tuple[str, dict[str, float]]]:
    """weld01 drifts to 190 A at 1 s against a 180 A setpoint for 4 s, then back; weld02 follows
    its own setpoint (changed to 185 A at 2 s, with the current) and never deviates."""
    out = []
    for k in range(61):  # 6 s at 100 ms
        ts = T0_MS + 100 * k
        current = 190.0 if 10 <= k < 50 else 180.2
        out.append(("weld01", {"ts": ts, "current": current, "voltage": 24.1, "current_sp": 180}))
        sp = 185 if k >= 20 else 180
        out.append(("weld02", {"ts": ts, "current": sp + 0.4, "voltage": 24.0, "current_sp": sp}))
    return out


async def queue(host: str, port: int, client_id: str, prefix: str) -> None:
    """Register the collector's persistent session, then publish every message at QoS 1."""
    session = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    session.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
    await asyncio.to_thread(session.connect, host, port)
    session.loop_start()
    session.subscribe(f"{prefix}/+", qos=1)
    await asyncio.wait_for(subscribed.wait(), 10)
    session.disconnect()
    await asyncio.to_thread(session.loop_stop)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
    await asyncio.to_thread(pub.connect, host, port)
    pub.loop_start()
    infos = [pub.publish(f"{prefix}/{w}", json.dumps(doc).encode(), qos=1) for w, doc in messages()]
    for info in infos:
        await asyncio.to_thread(info.wait_for_publish, 10)
    pub.disconnect()
    await asyncio.to_thread(pub.loop_stop)


async def test_setpoint_from_the_same_message_raises_the_deviation(
    mqtt_broker: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mqtt_broker
    prefix, client_id = unique("pptest/fields"), unique("col")
    await queue(host, port, client_id, prefix)
    source = MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "welders", "host": host, "port": port, "client_id": client_id,
            "subscriptions": [
                {"topic": f"{prefix}/+", "asset": "line1/{-1}", "timestamp": "$.ts", "timestamp_format": "ms",
                 "fields": {"current": "{asset}/current", "voltage": "{asset}/voltage",
                            "current_sp": "{asset}/current_sp"}},
            ],
        }
    )  # fmt: skip
    db = tmp_path / "fields.db"
    plant = PlantConfig(
        sources=[source],
        store=StoreConfig(url=f"sqlite:///{db}", spool=SpoolConfig(dir=db.with_suffix(".spool"))),
    )
    stop = asyncio.Event()
    events: list[AlertEvent] = []

    def on_alert(ev: AlertEvent) -> None:
        events.append(ev)
        if ev.kind == "cleared":
            stop.set()

    result = await run_pipeline(
        plant, load_rules_text(RULES, "rules.yaml"), stop=stop, duration=30, on_alert=on_alert
    )
    assert [(e.kind, e.tag) for e in events] == [
        ("raised", "line1/weld01/current"),
        ("cleared", "line1/weld01/current"),
    ]
    raised = events[0]
    assert raised.raised_at == (T0_MS + 1000 + 3000) * NS_PER_MS  # deviating from 1 s, for 3 s
    assert raised.value == 190.0
    assert result.stats.samples == 3 * len(messages())
    # the run can end before its store finished opening (everything stays spooled for the next
    # start): replay the spool as the next start would, then read the store
    replay = SpoolWriter(SQLiteStore(f"sqlite:///{db}"), plant.store.spool_config)
    await replay.start()
    await asyncio.wait_for(replay.flush(), 20)
    await replay.stop()
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        alerts = await store.alerts()
        latest = await store.latest()
    finally:
        await store.close()
    last = T0_MS * NS_PER_MS + 6 * 10**9
    assert {(tag, s.ts, s.value) for tag, s in latest.items()} == {
        ("line1/weld01/current", last, 180.2),
        ("line1/weld01/voltage", last, 24.1),
        ("line1/weld01/current_sp", last, 180.0),
        ("line1/weld02/current", last, 185.4),
        ("line1/weld02/voltage", last, 24.0),
        ("line1/weld02/current_sp", last, 185.0),
    }
    assert [(a.rule, a.tag, a.raised_at) for a in alerts] == [
        ("weld-current-deviation", "line1/weld01/current", raised.raised_at)
    ]
