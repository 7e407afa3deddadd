"""A gap marker after a real reconnect: the runner polls a real Modbus server, the server goes
away and comes back on the same port, and one ``_gaps/<source>`` marker with the outage length
arrives through ``put_markers``. Every sample carries a quality."""

from __future__ import annotations

import asyncio
from typing import Any

from collector_helpers import RecordingSink

from plantpulse.collectors.modbus import ModbusCollector
from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.quality import GAP_TAG_PREFIX
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.samples import Quality
from plantpulse.simulators.modbus import ModbusDeviceServer
from plantpulse.timefmt import NS_PER_S

LAYOUT: Any = {1: {"holding": {0: 10, 1: 11}}}


async def test_gap_marker_after_a_modbus_reconnect(sink: RecordingSink) -> None:
    server = ModbusDeviceServer(LAYOUT)
    await server.start()
    src = ModbusSource.model_validate(
        {
            "kind": "modbus", "name": "press", "tcp": {"host": "127.0.0.1", "port": server.port},
            "interval": "20ms", "timeout": "1s", "request_timeout": "250ms",
            "tags": [{"name": "l1/p/a", "address": 0}, {"name": "l1/p/b", "address": 1}],
        }
    )  # fmt: skip
    runner = CollectorRunner(
        ModbusCollector(src),
        sink,
        interval=src.interval / NS_PER_S,
        timeout=src.timeout / NS_PER_S,
        tags=[t.name for t in src.tags],
        backoff=Backoff(initial=0.02, maximum=0.05, jitter=0),
    )
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: any(x.quality == Quality.GOOD for x in s.samples))
        assert sink.markers == []  # the first connection is no reconnect
        await server.stop()
        await sink.wait_for(lambda s: len(s.errors) >= 2)
        await server.start()
        await sink.wait_for(lambda s: bool(s.markers))
        await sink.wait_for(lambda s: s.samples[-1].quality == Quality.GOOD)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    [gap] = sink.markers
    assert gap.tag == f"{GAP_TAG_PREFIX}press" and gap.quality == Quality.UNCERTAIN
    assert 0.02 <= gap.value < 10  # seconds without the device
    assert {x.quality for x in sink.samples} <= set(Quality)
    assert Quality.BAD in {x.quality for x in sink.samples}  # the outage itself was marked bad
    assert runner.status().markers == 1
