"""plantpulse as a Sparkplug 3.0 Host Application (``sparkplug.host_id``), on the system Mosquitto.

The STATE certificates as Sparkplug 3.0 has them: the retained birth ``{"online": true,
"timestamp": T}`` after the subscriptions, the will ``{"online": false, "timestamp": T}`` with
the same T (seen when the process is killed), a clean death with the stop time; and an edge node
configured with this Primary Host ID (the simulator's ``primary_host`` mode) that waits for the
birth, holds its data while the host is away and sends it as history when the host is back.
Every wait is on an event (a STATE message, a sink condition, simulator ticks)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from collector_helpers import RecordingSink
from mqtt_helpers import collecting, unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.mqtt import MqttSimulator, mqtt_source

pytestmark = pytest.mark.mqtt

SCENARIO = """
name: host
asset: line1
welders: 2
seed: 3
tick: 50ms
duration: 2s
loop: true
"""


class StateWatcher:
    """A plain client on ``spBv1.0/STATE/<host>``: every STATE message with its retain flag."""

    def __init__(self, host: str, port: int, host_id: str) -> None:
        self.topic = f"spBv1.0/STATE/{host_id}"
        self.messages: asyncio.Queue[tuple[dict[str, Any], bool]] = asyncio.Queue()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("watch"))
        self._addr = (host, port)

    async def __aenter__(self) -> StateWatcher:
        loop = asyncio.get_running_loop()
        subscribed = asyncio.Event()

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.payload:  # an empty payload clears a retained STATE (test cleanup)
                loop.call_soon_threadsafe(
                    self.messages.put_nowait, (json.loads(msg.payload), bool(msg.retain))
                )

        self._client.on_message = on_message
        self._client.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
        await asyncio.to_thread(self._client.connect, *self._addr)
        self._client.loop_start()
        self._client.subscribe(self.topic, qos=1)
        await asyncio.wait_for(subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # leave no retained STATE behind on the shared broker
        info = self._client.publish(self.topic, b"", qos=1, retain=True)
        await asyncio.to_thread(info.wait_for_publish, 5)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def publish(self, state: dict[str, Any]) -> None:
        info = self._client.publish(self.topic, json.dumps(state).encode(), qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def next(self) -> tuple[dict[str, Any], bool]:
        return await asyncio.wait_for(self.messages.get(), 10)


def host_source(host: str, port: int, host_id: str, group: str, **extra: Any) -> MqttSource:
    return MqttSource.model_validate(
        {"kind": "mqtt", "name": "host", "host": host, "port": port, "client_id": unique("host"),
         "format": "sparkplug", "sparkplug": {"group": group, "host_id": host_id, **extra}}
    )  # fmt: skip


async def test_state_birth_after_subscribing_and_a_clean_death(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    host_id = unique("phid")
    async with StateWatcher(host, port, host_id) as watcher:
        source = host_source(host, port, host_id, unique("grp"))
        async with collecting(source, RecordingSink()) as collector:
            birth, retained = await watcher.next()
            assert birth["online"] is True and set(birth) == {"online", "timestamp"}
            assert not retained  # live to a subscriber; the broker keeps it retained (below)
            assert collector.status().state_births == 1
        death, _ = await watcher.next()
        assert death["online"] is False and death["timestamp"] >= birth["timestamp"]
        async with StateWatcher(host, port, host_id) as late:  # a late subscriber sees the retained death
            assert await late.next() == (death, True)


async def test_a_late_offline_state_is_answered_with_the_birth(mqtt_broker: tuple[str, int]) -> None:
    """A will of an earlier connection delivered after our birth would leave edge nodes
    holding: a live (not retained) offline STATE for our id makes us publish the birth again."""
    host, port = mqtt_broker
    host_id = unique("phid")
    async with StateWatcher(host, port, host_id) as watcher:
        async with collecting(host_source(host, port, host_id, unique("grp")), RecordingSink()) as collector:
            birth, _ = await watcher.next()
            stale = {"online": False, "timestamp": birth["timestamp"] - 60_000}
            await watcher.publish(stale)
            assert await watcher.next() == (stale, False)
            assert await watcher.next() == (birth, False)  # the same birth, the same T
            assert collector.status().state_births == 2
        assert (await watcher.next())[0]["online"] is False


async def test_the_will_carries_the_birth_timestamp(mqtt_broker: tuple[str, int], tmp_path: Path) -> None:
    """Killed without a DISCONNECT, the broker publishes our will: offline, the birth's T."""
    host, port = mqtt_broker
    host_id = unique("phid")
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            sys.path.insert(0, {str(Path(__file__).parents[1])!r})
            from collector_helpers import RecordingSink
            from plantpulse.collectors.mqtt import MqttCollector
            from plantpulse.collectors.mqtt_config import MqttSource

            async def main():
                source = MqttSource.model_validate({{
                    "kind": "mqtt", "name": "host", "host": {host!r}, "port": {port}, "keepalive": "60s",
                    "format": "sparkplug", "sparkplug": {{"group": "g-{host_id}", "host_id": {host_id!r}}}}})
                collector = MqttCollector(source)
                task = asyncio.create_task(collector.run(RecordingSink()))
                await collector.subscribed.wait()
                print("ready", flush=True)
                await task

            asyncio.run(main())
            """
        ),
        encoding="utf-8",
    )
    async with StateWatcher(host, port, host_id) as watcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"ready\n"
            birth, _ = await watcher.next()
            assert birth["online"] is True
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        will, _ = await watcher.next()  # the broker notices the closed socket at once
        assert will == {"online": False, "timestamp": birth["timestamp"]}


async def test_edge_waits_for_the_host_and_forwards_what_it_held(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    host_id, group = unique("phid"), unique("grp")
    scenario = sc.Scenario.model_validate(yaml.safe_load(SCENARIO))
    plain = mqtt_source(scenario, host, port, "sparkplug", group=group, client_id=unique("host"))
    assert plain.sparkplug is not None
    doc = plain.model_dump(mode="json", exclude={"persistent"})
    source = MqttSource.model_validate(doc | {"sparkplug": doc["sparkplug"] | {"host_id": host_id}})
    assert not source.persistent  # a host application's clean session
    sink = RecordingSink()
    async with (
        StateWatcher(host, port, host_id),
        MqttSimulator(scenario, host, port, format="sparkplug", group=group, primary_host=host_id) as sim,
    ):
        await sim.wait_ticks(5)
        assert sim.messages_published == 0 and not sim.host_online  # no STATE yet: nothing sent
        async with collecting(source, sink):
            await sink.wait_for(lambda s: len(s.historical) > 0 and len(s.samples) > 20)
        # the host stopped cleanly: its death says offline; the edge holds again
        await asyncio.wait_for(sim.wait_host(online=False), 10)
        published = sim.messages_published
        await sim.wait_ticks(6)
        assert sim.messages_published == published
        async with collecting(source, sink):
            await asyncio.wait_for(sim.wait_host(online=True), 10)
            # what both absences held (its last tick went into the birth, not the history)
            held = {sim.start_ns + k * scenario.tick for k in sim.held_ticks}
            await sink.wait_for(lambda s: {x.ts for x in s.historical} >= held)
        truth = sc.truth_samples(scenario, sim.start_ns)
    hist = {(s.ts, s.tag, _v(s.value)) for s in sink.historical}
    assert {ts for ts, _, _ in hist} <= held  # history is exactly what was held ...
    wanted = {(s.ts, s.tag, _v(s.value)) for s in truth if s.ts in held}
    assert wanted <= hist  # ... all of it, with its own timestamps
    live = {(s.ts, s.tag, _v(s.value)) for s in sink.samples}
    assert not live & hist  # nothing delivered twice


def _v(value: float) -> float | str:
    return "nan" if math.isnan(value) else value
