"""The runner's per-tag watchdog, stepped on an injected clock: one bad marker per tag and
outage via ``put_markers`` (never ``put``), re-armed by the next arrival; and which interval
applies to which tag for every collector kind."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from collector_helpers import RecordingSink

from plantpulse.collectors.base import Sink
from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.quality import TagIntervals
from plantpulse.collectors.registry import KINDS, _per_tag, build_runner
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.config import OpcUaSource
from plantpulse.samples import Quality, Sample

S = 1_000_000_000
T0 = 1_767_225_600 * S


class VirtualTime:
    """Wall clock and sleep in one: sleeping advances the clock, never waits."""

    def __init__(self) -> None:
        self.now = T0

    def wallclock(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += round(seconds * S)
        await asyncio.sleep(0)


class Feeder:
    """A streaming collector that delivers whatever the test hands it."""

    name = "feed"
    address = "test://feed"

    def __init__(self) -> None:
        self.batches: asyncio.Queue[list[Sample]] = asyncio.Queue()

    async def run(self, sink: Sink) -> None:
        while True:
            await sink.put(await self.batches.get())

    async def close(self) -> None:
        return None


async def test_watchdog_marks_once_per_outage_and_rearms(sink: RecordingSink) -> None:
    vt = VirtualTime()
    feeder = Feeder()
    intervals = TagIntervals({"line1/a/x": 2 * S}, default=5 * S)
    runner = CollectorRunner(feeder, sink, stale_after=intervals, sleep=vt.sleep, wallclock=vt.wallclock)
    task = asyncio.create_task(runner.run())
    try:
        device = T0 - 60 * S  # a device clock a minute behind
        feeder.batches.put_nowait([Sample(device, "line1/a/x", 1.0), Sample(device, "line1/b/y", 2.0)])
        await sink.wait_for(lambda s: len(s.markers) == 2)
        first = [(m.ts - T0, m.tag, m.quality) for m in sink.markers]
        # arrival time (not the device's) + each tag's own interval; one marker each
        assert first == [(2 * S, "line1/a/x", Quality.BAD), (5 * S, "line1/b/y", Quality.BAD)]
        assert all(math.isnan(m.value) for m in sink.markers)
        assert runner.status().stale == ("line1/a/x", "line1/b/y")
        back = vt.now
        feeder.batches.put_nowait([Sample(device + 1, "line1/a/x", 3.0)])  # a comes back: re-armed
        await sink.wait_for(lambda s: len(s.markers) == 3)
        assert (sink.markers[2].ts, sink.markers[2].tag) == (back + 2 * S, "line1/a/x")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [s.value for s in sink.samples] == [1.0, 2.0, 3.0]  # markers never went to put
    status = runner.status()
    assert status.markers == 3 and status.stale == ("line1/a/x", "line1/b/y")


async def test_known_tags_that_never_report_go_stale(sink: RecordingSink) -> None:
    vt = VirtualTime()
    runner = CollectorRunner(
        Feeder(), sink, tags=["line1/c/z"], stale_after={"line1/c/z": S},
        sleep=vt.sleep, wallclock=vt.wallclock,
    )  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: bool(s.markers))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [(m.ts - T0, m.tag) for m in sink.markers] == [(S, "line1/c/z")]


def _config(kind: str, **fields: Any) -> Any:
    model: Any = {"opcua": OpcUaSource, "modbus": ModbusSource, "mqtt": MqttSource}[kind]
    return model.model_validate({"kind": kind, "name": kind, **fields})


def test_stale_after_per_tag_and_per_subscription() -> None:
    opcua = _config(
        "opcua",
        endpoint="opc.tcp://plc:4840",
        stale_after="10s",
        tags=[{"name": "l/a", "node": "ns=2;s=a", "stale_after": "1s"}, {"name": "l/b", "node": "ns=2;s=b"}],
    )
    modbus = _config(
        "modbus",
        tcp={"host": "plc"},
        tags=[{"name": "l/c", "address": 0, "stale_after": "3s"}, {"name": "l/d", "address": 1}],
    )
    mqtt = _config(
        "mqtt",
        host="broker",
        stale_after="30s",
        subscriptions=[
            {"topic": "fast/+", "tag": "line1/{1}/v", "stale_after": "2s"},
            {"topic": "slow/#", "tag": "{topic}"},
        ],
    )
    of = {k: KINDS[k].stale_after for k in KINDS}
    for kind, cfg, expected in (
        ("opcua", opcua, {"l/a": S, "l/b": 10 * S}),
        ("modbus", modbus, {"l/c": 3 * S, "l/d": None}),
        ("mqtt", mqtt, {"line1/p1/v": 2 * S, "slow/x/y": 30 * S, "line1/p1/extra/v": 30 * S}),
    ):
        resolve = of[kind]
        assert resolve is not None
        intervals = resolve(cfg)
        assert {tag: intervals(tag) for tag in expected} == expected, kind
    unwatched = _config("modbus", tcp={"host": "p"}, tags=[{"name": "a/b", "address": 0}])
    assert not _per_tag(unwatched)  # no stale_after anywhere: the runner keeps no watchdog


async def test_build_runner_wires_the_watchdog_and_historical(sink: RecordingSink) -> None:
    mqtt = _config(
        "mqtt", host="127.0.0.1", port=1, stale_after="1s", subscriptions=[{"topic": "a/+", "tag": "t/{1}"}]
    )
    runner = build_runner(mqtt, sink)
    collector: Any = runner.collector
    historical: Sequence[Sample] = [Sample(time.time_ns(), "t/x", 1.0)]  # within accept.behind
    await collector._historical_sink(historical)  # the MQTT collector's historical= callback
    assert sink.historical == historical and sink.samples == []
    assert runner.status().historical == 1  # counted by the runner on the way
