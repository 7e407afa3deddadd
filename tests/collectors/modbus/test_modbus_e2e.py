"""End to end against the scenario truth: every welder a unit id, values per tick equal to
``Scenario.evaluate`` through the register map, faults as exception responses and silence;
over TCP, over RTU through a socat virtual serial pair, and under the runner with live ticks."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
from collector_helpers import RecordingSink
from modbus_helpers import serial_pair

from plantpulse.collectors.modbus import ModbusCollector
from plantpulse.collectors.modbus_plan import decode, encode
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.samples import Quality, Sample
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.modbus import REGISTER_MAP, ModbusSimulator, modbus_source
from plantpulse.timefmt import NS_PER_S

SLOTS = {s.signal: s for s in REGISTER_MAP}


def with_dropout(scenario: sc.Scenario) -> sc.Scenario:
    data = scenario.model_dump()
    data["faults"].append({"welder": "weld01", "kind": "dropout", "start": "4s", "duration": "500ms"})
    return sc.Scenario.model_validate(data)


def expected(scenario: sc.Scenario, k: int) -> dict[str, tuple[float, Quality]]:
    """What a poll at tick k must return: the truth through the register encoding; a welder's
    holding block is bad while any of its signals is bad; everything of a dropped-out welder is bad."""
    out: dict[str, tuple[float, Quality]] = {}
    frames = {s: scenario.evaluate(s, [k]) for s in sc.SIGNALS}
    for row, welder in enumerate(scenario.welder_names()):
        silent = not frames["current"].updated[row, 0]
        failing = any(frames[s].status[row, 0] for s in sc.SIGNALS)
        for signal in sc.SIGNALS:
            slot = SLOTS[signal]
            tag = slot.tag("x", row + 1)
            bad = silent or (failing and slot.table == "holding")
            value = math.nan if bad else decode(encode(float(frames[signal].value[row, 0]), tag), tag)
            out[f"{scenario.asset}/{welder}/{signal}"] = (value, Quality.BAD if bad else Quality.GOOD)
    return out


def check(samples: list[Sample], want: dict[str, tuple[float, Quality]], k: int) -> None:
    got = {s.tag: (s.value, s.quality) for s in samples}
    assert set(got) == set(want)
    for tag, (value, quality) in want.items():
        gv, gq = got[tag]
        assert gq == quality, (k, tag, got[tag], want[tag])
        assert (math.isnan(gv) and math.isnan(value)) or gv == value, (k, tag, gv, value)


TICKS = [0, 4, 5, 6, 14, 15, 19, 20, 25, 29, 30, 31, 39, 40, 44, 45, 60]


async def test_tcp_values_per_tick_match_the_scenario(scenario: sc.Scenario) -> None:
    scenario = with_dropout(scenario)
    async with ModbusSimulator(scenario, ticking=False) as sim:
        collector = ModbusCollector(sim.source(request_timeout="150ms"))
        try:
            assert len(collector.requests) == 2 * scenario.welders  # coil + holding per welder
            for k in TICKS:
                sim.write_tick(k)
                check(await collector.read(), expected(scenario, k), k)
        finally:
            await collector.close()
    bad_ticks = [k for k in TICKS if any(q == Quality.BAD for _, q in expected(scenario, k).values())]
    assert bad_ticks == [5, 6, 14, 40, 44]  # bad_quality 0.5-1.5s on weld02, dropout 4-4.5s on weld01


async def test_rtu_over_a_socat_pair_with_two_sources_on_one_line(
    scenario: sc.Scenario, tmp_path: Path
) -> None:
    """Two sources (one per welder) on the same serial line share one client and one lock."""
    scenario = with_dropout(scenario)
    async with serial_pair(tmp_path) as (dev_a, dev_b):
        # parity N: Linux pseudo-terminals refuse even parity (termios EINVAL)
        async with ModbusSimulator(scenario, device=dev_a, parity="N", ticking=False) as sim:
            both = modbus_source(scenario, device=dev_b, parity="N", request_timeout="200ms")
            per_welder = [
                both.model_copy(
                    update={"name": f"rtu-{w}", "tags": [t for t in both.tags if f"/{w}/" in t.name]}
                )
                for w in scenario.welder_names()
            ]
            collectors = [ModbusCollector(s) for s in per_welder]
            try:
                for k in (0, 6, 40, 45):
                    sim.write_tick(k)
                    results = await asyncio.gather(*(c.read() for c in collectors))
                    check([s for batch in results for s in batch], expected(scenario, k), k)
                lines = {id(c._line) for c in collectors}
                assert len(lines) == 1
            finally:
                for c in collectors:
                    await c.close()
        assert sim.server.requests > 0


async def test_runner_with_live_ticks_matches_the_truth(scenario: sc.Scenario, sink: RecordingSink) -> None:
    """The whole path, live: the simulator ticks on the wall clock, the runner polls every 50 ms.
    A response carries the tick written before it (or, at a boundary, the one just before)."""
    async with ModbusSimulator(scenario) as sim:
        src = sim.source(interval="50ms", request_timeout="300ms")
        runner = CollectorRunner(
            ModbusCollector(src),
            sink,
            interval=0.05,
            timeout=src.timeout / NS_PER_S,
            tags=[t.name for t in src.tags],
        )
        task = asyncio.create_task(runner.run())
        try:
            await sink.wait_for(lambda s: len(s.samples) >= 10 * len(src.tags), within=20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    current = [s for s in sink.samples if s.tag == "line1/weld01/current"]
    for s in current:
        k = sim.tick_at(s.ts)
        truth = scenario.evaluate("current", [k - 1, k]).value[0]
        assert s.quality == Quality.GOOD and bool(np.any(truth == s.value)), (k, s.value, truth)
    assert runner.status().available is True
