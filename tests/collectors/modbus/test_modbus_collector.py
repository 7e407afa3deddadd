"""The collector against a real pymodbus server on loopback: failures stay local to their
request, values are stamped at the midpoint of their request's round trip, lost connections go
to the runner, which reconnects."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from typing import Any

import pytest
from collector_helpers import RecordingSink
from pymodbus.constants import ExcCodes

from plantpulse.collectors.errors import TagError
from plantpulse.collectors.modbus import ModbusCollector
from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.registry import build_runner
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.errors import SourceError, SourceUnavailable
from plantpulse.samples import Quality
from plantpulse.simulators.modbus import ModbusDeviceServer
from plantpulse.timefmt import NS_PER_S

LAYOUT: Any = {
    1: {"holding": {0: 10, 1: 11, 2: 12, 3: 13}, "coil": {0: 1}},
    2: {"holding": {0: 20, 1: 21}},
}
TAGS = [
    {"name": "u1/a", "address": 0},
    {"name": "u1/b", "address": 1},
    {"name": "u1/c", "address": 3},
    {"name": "u1/run", "table": "coil", "address": 0},
    {"name": "u2/a", "unit_id": 2, "address": 0},
    {"name": "u2/b", "unit_id": 2, "address": 1},
]


def source(port: int, **kw: Any) -> ModbusSource:
    return ModbusSource.model_validate(
        {
            "kind": "modbus",
            "name": "dev",
            "tcp": {"host": "127.0.0.1", "port": port},
            "request_timeout": "250ms",
            "tags": TAGS,
            **kw,
        }
    )


def values(samples: Any) -> dict[str, float]:
    return {s.tag: s.value for s in samples}


async def test_reads_every_tag_in_few_requests() -> None:
    async with ModbusDeviceServer(LAYOUT) as server:
        collector = ModbusCollector(source(server.port, max_gap=1))
        try:
            assert [r.describe() for r in collector.requests] == [
                "unit 1 coil 0-0 (1 bits)",
                "unit 1 holding 0-3 (4 registers)",
                "unit 2 holding 0-1 (2 registers)",
            ]
            got = values(await collector.read())
            assert server.requests == 3
        finally:
            await collector.close()
    assert got == {"u1/a": 10, "u1/b": 11, "u1/c": 13, "u1/run": 1, "u2/a": 20, "u2/b": 21}


async def test_an_exception_response_makes_only_that_requests_tags_bad() -> None:
    reported: list[SourceError] = []
    async with ModbusDeviceServer(LAYOUT) as server:
        collector = ModbusCollector(source(server.port), report=reported.append)
        try:
            server.fail(1, "holding", 1)  # 04 server device failure for reads touching holding 1
            bad = await collector.read()
            server.heal(1, "holding", 1)
            good = await collector.read()
        finally:
            await collector.close()
    q = {s.tag: s.quality for s in bad}
    assert {t for t, v in q.items() if v == Quality.BAD} == {"u1/a", "u1/b"}  # the request 0-1
    assert values(bad)["u1/c"] == 13 and values(bad)["u2/a"] == 20
    assert all(math.isnan(s.value) for s in bad if s.quality == Quality.BAD)
    assert all(s.quality == Quality.GOOD for s in good)
    (error,) = reported
    assert isinstance(error, TagError)
    assert str(error) == (
        f"dev (tcp://127.0.0.1:{server.port}): unit 1 holding 0-1 (2 registers): "
        "exception 0x04 (server device failure)"
    )


async def test_a_silent_unit_times_out_alone_and_failures_carry_the_time_they_became_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plantpulse.collectors.modbus")
    clock = itertools.count(1_000 * NS_PER_S, NS_PER_S)  # read at each send and each arrival
    async with ModbusDeviceServer(LAYOUT) as server:
        collector = ModbusCollector(source(server.port), wallclock=lambda: next(clock))
        try:
            server.silent.add(2)
            first = await collector.read()
            second = await collector.read()
            server.silent.clear()
            third = await collector.read()
        finally:
            await collector.close()
    for samples in (first, second):
        bad = {s.tag for s in samples if s.quality == Quality.BAD}
        assert bad == {"u2/a", "u2/b"}
    assert all(s.quality == Quality.GOOD for s in third)
    # four requests, each between two clock readings: values at the midpoint of their own
    # request, the silent unit's bad markers when its timeout ran out
    stamps = sorted({s.ts for s in first})
    half = NS_PER_S // 2
    assert stamps == [1000 * NS_PER_S + half, 1002 * NS_PER_S + half, 1004 * NS_PER_S + half, 1007 * NS_PER_S]
    assert {s.ts for s in first if s.tag.startswith("u2/")} == {1007 * NS_PER_S}
    # logged once when it started failing, once when it answered again
    timeouts = [r for r in caplog.records if "no response within 0.25s" in r.getMessage()]
    assert len(timeouts) == 1
    assert any("unit 2 holding 0-1 (2 registers) answers again" in r.getMessage() for r in caplog.records)


class _Clock:
    now = 1_000 * NS_PER_S

    def __call__(self) -> int:
        return self.now


class _DeviceReadingAt(ModbusDeviceServer):
    """A device that reads its registers 4 ms after the request was sent and whose answer
    arrives 4 ms later: the clock is stepped by the device itself, not by sleeping."""

    def __init__(self, layout: Any, clock: _Clock) -> None:
        super().__init__(layout)
        self.clock = clock
        self.read_at: list[int] = []

    async def _action(self, *args: Any) -> Any:
        self.clock.now += 4_000_000
        self.read_at.append(self.clock.now)
        answer = await super()._action(*args)
        self.clock.now += 4_000_000  # the way back
        return answer


async def test_values_are_stamped_at_the_midpoint_of_their_request_and_response() -> None:
    clock = _Clock()
    tags = [{"name": "u1/a", "address": 0}, {"name": "u1/c", "address": 3}]  # two requests
    async with _DeviceReadingAt({1: {"holding": {0: 10, 3: 13}}}, clock) as server:
        collector = ModbusCollector(source(server.port, tags=tags), wallclock=clock)
        try:
            samples = await collector.read()
        finally:
            await collector.close()
    # the device read each request's registers half way through its round trip (4 ms of 8):
    # that instant is the sample's, not the response's arrival 4 ms later
    assert [(s.tag, s.ts) for s in samples] == [("u1/a", server.read_at[0]), ("u1/c", server.read_at[1])]
    assert server.read_at == [1_000_004_000_000, 1_000_012_000_000]


async def test_nothing_listening_is_source_unavailable_with_the_address() -> None:
    async with ModbusDeviceServer(LAYOUT) as server:
        port = server.port
    collector = ModbusCollector(source(port))
    with pytest.raises(SourceUnavailable) as err:
        await collector.read()
    assert str(err.value) == f"dev (tcp://127.0.0.1:{port}): cannot connect"
    await collector.close()


async def test_a_dropped_connection_is_source_unavailable_then_reconnects() -> None:
    server = ModbusDeviceServer(LAYOUT)
    await server.start()
    collector = ModbusCollector(source(server.port))
    try:
        assert len(await collector.read()) == 6
        await server.stop()
        with pytest.raises(SourceUnavailable, match=r"connection lost|cannot connect"):
            await collector.read()
        await server.start()  # same port
        assert all(s.quality == Quality.GOOD for s in await collector.read())
    finally:
        await collector.close()
        await server.stop()


async def test_runner_marks_all_bad_during_a_restart_and_recovers(sink: RecordingSink) -> None:
    server = ModbusDeviceServer(LAYOUT)
    await server.start()
    src = source(server.port, interval="20ms", timeout="1s")
    collector = ModbusCollector(src)
    runner = CollectorRunner(
        collector,
        sink,
        interval=src.interval / NS_PER_S,
        timeout=src.timeout / NS_PER_S,
        tags=[t.name for t in src.tags],
        backoff=Backoff(initial=0.02, maximum=0.1, jitter=0),
    )
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: any(x.quality == Quality.GOOD for x in s.samples))
        await server.stop()
        await sink.wait_for(lambda s: len(s.errors) >= 2)  # failed at least twice, backing off
        assert runner.status().available is False
        seen = len(sink.samples)
        await server.start()
        await sink.wait_for(
            lambda s: sum(1 for x in s.samples[seen:] if x.quality == Quality.GOOD) >= len(TAGS)
        )
        status = runner.status()
        assert status.available is True
        assert status.reconnects == 0 and status.errors["unavailable"] >= 2
        during = [x for x in sink.samples if x.quality == Quality.BAD]
        assert {x.tag for x in during} == {t["name"] for t in TAGS}  # the runner's all-bad samples
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every warning or error logged by anyone (plantpulse, the runner, pymodbus)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_device_that_always_answers_with_an_exception_logs_once_per_cause_per_outage(
    sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with ModbusDeviceServer({1: {"holding": {0: 10, 1: 11}}}) as server:
        src = source(server.port, interval="10ms", timeout="1s", tags=TAGS[:2])
        runner = build_runner(src, sink)
        task = asyncio.create_task(runner.run())
        try:
            failed = 0
            # one outage of the request, the device alternating between two exceptions
            for code in (ExcCodes.DEVICE_FAILURE, ExcCodes.DEVICE_BUSY, ExcCodes.DEVICE_FAILURE):
                server.fail(1, "holding", 0, 2, code=code)
                failed += 3
                await sink.wait_for(lambda s, n=failed: len(s.errors) >= n)
            server.heal(1, "holding", 0, 2)
            seen = len(sink.samples)
            await sink.wait_for(lambda s: any(x.quality == Quality.GOOD for x in s.samples[seen:]))
            server.fail(1, "holding", 0, 2)  # a second outage, the first cause again
            failed = len(sink.errors) + 3
            await sink.wait_for(lambda s: len(s.errors) >= failed)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    request = f"dev (tcp://127.0.0.1:{server.port}): unit 1 holding 0-1 (2 registers)"
    assert warnings_in(caplog) == [
        f"{request}: exception 0x04 (server device failure): 2 tags bad (u1/a, u1/b)",
        f"{request}: exception 0x06 (server device busy): 2 tags bad (u1/a, u1/b)",
        f"{request}: exception 0x04 (server device failure): 2 tags bad (u1/a, u1/b)",
    ]
    assert sum("answers again" in r.getMessage() for r in caplog.records) == 1
    # every failed poll is still counted, by the runner and downstream
    assert runner.status().errors["tag"] == len(sink.errors) >= 11


async def test_a_silent_unit_logs_once_per_outage_not_on_every_poll(
    sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with ModbusDeviceServer(LAYOUT) as server:
        server.silent.add(2)
        src = source(server.port, interval="10ms", timeout="2s", request_timeout="50ms")
        runner = build_runner(src, sink)
        task = asyncio.create_task(runner.run())
        try:
            await sink.wait_for(lambda s: len(s.errors) >= 4)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    # pymodbus' own per-request error (with a frame dump) is not repeated on every poll
    assert warnings_in(caplog) == [
        f"dev (tcp://127.0.0.1:{server.port}): unit 2 holding 0-1 (2 registers): "
        "no response within 0.05s: 2 tags bad (u2/a, u2/b)"
    ]
    assert runner.status().errors["tag"] == len(sink.errors) >= 4
