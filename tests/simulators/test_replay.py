"""Replay of a recorded sample file through each protocol, into the real collectors.

Each protocol test replays the same recording and checks that every value arrives at the
collector, per tag in file order; the speed factor is checked on the replay's own clock
(``ReplayStats``), never with a sleep in the test.
"""

from __future__ import annotations

import asyncio
import gc
import math
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from plantpulse.collectors.registry import build_runner
from plantpulse.errors import SourceError
from plantpulse.samples import Quality, Sample
from plantpulse.simulators.broker import EmbeddedBroker
from plantpulse.simulators.replay import (
    ModbusReplayTarget,
    MqttReplayTarget,
    OpcUaReplayTarget,
    ReplayData,
    Replayer,
    ReplayTarget,
    load_replay,
)


class RecordingSink:
    """Records samples; ``wait_for(pred)`` returns once they satisfy ``pred`` (an event, no sleeps)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self._changed = asyncio.Event()

    async def put(self, samples: Sequence[Sample]) -> None:
        self.samples.extend(samples)
        self._changed.set()

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        await self.put(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        return None

    def error(self, source: str, error: SourceError) -> None:
        return None

    async def wait_for(self, pred: Callable[[RecordingSink], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()


TAGS = ["line9/a/x", "line9/b/y", "line9/c/z"]
S = 1_000_000_000
T0 = 1_767_225_600 * S


def write_recording(path: Path, rows: int, spacing_s: float, *, bad_at: int | None = None) -> Path:
    """``rows`` instants ``spacing_s`` apart, one value per tag each (float32-exact values),
    written out of order across tags so the reader's sort is exercised."""
    lines = ["ts,tag,value,quality"]
    for k in range(rows):
        ts = 1_767_225_600 + k * spacing_s
        for j, tag in reversed(list(enumerate(TAGS))):
            bad = bad_at == k and j == 0
            lines.append(f"{ts:.3f},{tag},{'' if bad else 10 * j + k + 0.5},{'bad' if bad else 'good'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def per_tag(samples: list[Sample], after_ns: int) -> dict[str, list[tuple[int, float, Quality]]]:
    out: dict[str, list[tuple[int, float, Quality]]] = {t: [] for t in TAGS}
    for s in samples:
        if s.tag in out and s.ts >= after_ns:
            out[s.tag].append((s.ts, s.value, s.quality))
    return out


def expected_values(data: ReplayData, tag: str) -> list[float]:
    i = data.names.index(tag)
    return [float(v) for v, t in zip(data.value.tolist(), data.tag.tolist(), strict=True) if t == i]


def same_values(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, want, strict=True)
    )


def test_recording_is_sorted_and_framed(tmp_path: Path) -> None:
    data = load_replay(write_recording(tmp_path / "r.csv", 4, 0.25))
    assert data.names == sorted(TAGS)
    assert data.ts.tolist() == sorted(data.ts.tolist())
    assert data.span_ns == 750_000_000
    assert [hi - lo for lo, hi in data.frames()] == [3, 3, 3, 3]
    # within one instant, file order is kept
    assert [data.names[t] for t in data.tag[:3].tolist()] == list(reversed(TAGS))


async def test_opcua_replay_at_10x(tmp_path: Path) -> None:
    data = load_replay(write_recording(tmp_path / "r.csv", 12, 2.0, bad_at=5))
    sink = RecordingSink()
    target = OpcUaReplayTarget(data.names)
    await target.start()
    runner = build_runner(target.source(publishing_interval="50ms"), sink)
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: {x.tag for x in s.samples} >= set(TAGS), within=15)  # subscribed
        replayer = Replayer(data, target, speed=10)
        stats = await replayer.run()
        first = stats.started_ns - 1_000_000  # stamps are whole milliseconds
        await sink.wait_for(lambda s: len(per_tag(s.samples, first)[TAGS[2]]) >= 12, within=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await target.stop()
    got = per_tag(sink.samples, stats.started_ns - 1_000_000)
    for tag in TAGS:
        assert same_values([v for _, v, _ in got[tag]], expected_values(data, tag)), (tag, got[tag])
        # the recording's spacing, shifted to the replay's start, arrives as SourceTimestamp
        assert [ts for ts, _, _ in got[tag]] == [replayer.stamp(T0 + k * 2 * S) for k in range(12)]
    assert got["line9/a/x"][5][2] == Quality.BAD
    assert_paced(stats.elapsed_ns, data.span_ns / 10, stats.max_late_ns)


async def test_modbus_replay_at_10x(tmp_path: Path) -> None:
    data = load_replay(write_recording(tmp_path / "r.csv", 12, 2.0, bad_at=5))
    sink = RecordingSink()
    target = ModbusReplayTarget(data.names)
    await target.start()
    assert target.mapping()[0] == "line9/a/x -> unit 1 holding 0-1 float32 ABCD"
    runner = build_runner(target.source(interval="20ms", request_timeout="200ms"), sink)
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: len(s.samples) >= 3, within=10)  # polling
        stats = await Replayer(data, target, speed=10).run()
        last = expected_values(data, TAGS[2])[-1]
        await sink.wait_for(lambda s: any(x.tag == TAGS[2] and x.value == last for x in s.samples), within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await target.stop()
    got = per_tag(sink.samples, stats.started_ns - 1_000_000)
    for tag in TAGS:
        # a poll reads the value of the moment: every change is seen once polls outpace changes
        values = [v for _, v, _ in got[tag]]
        changes = [v for i, v in enumerate(values) if i == 0 or not same_values([v], [values[i - 1]])]
        assert same_values(changes[-12:], expected_values(data, tag)), (tag, changes)
    assert any(q == Quality.BAD for _, _, q in got["line9/a/x"])
    assert_paced(stats.elapsed_ns, data.span_ns / 10, stats.max_late_ns)


@pytest.fixture
async def broker() -> AsyncIterator[tuple[str, int]]:
    async with EmbeddedBroker() as b:
        yield b.host, b.port
    with warnings.catch_warnings():  # amqtt leaves closed clients to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def replay_mqtt(
    data: ReplayData, host: str, port: int, speed: float | None
) -> tuple[RecordingSink, Replayer]:
    sink = RecordingSink()
    target: ReplayTarget = MqttReplayTarget(data.names, host, port, prefix="pptest/replay")
    await target.start()
    runner = build_runner(target.source(persistent=False), sink)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            await runner.collector.subscribed.wait()  # type: ignore[union-attr]
        replayer = Replayer(data, target, speed=speed)
        await replayer.run()
        await sink.wait_for(lambda s: len([x for x in s.samples if x.tag in TAGS]) >= len(data.ts), within=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await target.stop()
    return sink, replayer


async def test_mqtt_replay_as_fast_as_possible(tmp_path: Path, broker: tuple[str, int]) -> None:
    data = load_replay(write_recording(tmp_path / "r.csv", 300, 1.0, bad_at=7))
    sink, replayer = await replay_mqtt(data, *broker, speed=None)
    got = per_tag(sink.samples, 0)
    for tag in TAGS:
        assert same_values([v for _, v, _ in got[tag]], expected_values(data, tag)), tag
        assert [ts for ts, _, _ in got[tag]] == [replayer.stamp(T0 + k * S) for k in range(300)]
    assert got["line9/a/x"][7][2] == Quality.BAD
    # 299 s of recording as fast as possible: far faster than real time
    assert replayer.stats.achieved_speed > 20, replayer.stats


async def test_mqtt_replay_at_1x_on_mosquitto(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    data = load_replay(write_recording(tmp_path / "r.csv", 11, 0.1))
    sink, replayer = await replay_mqtt(data, *mqtt_broker, speed=1)
    got = per_tag(sink.samples, replayer.stamp(T0))
    for tag in TAGS:
        assert same_values([v for _, v, _ in got[tag]], expected_values(data, tag)), tag
    assert_paced(replayer.stats.elapsed_ns, data.span_ns, replayer.stats.max_late_ns)


def assert_paced(elapsed_ns: int, want_ns: float, max_late_ns: int) -> None:
    """The replay's clock: the span took span/speed (plus the final flush), no frame was late."""
    assert want_ns <= elapsed_ns <= want_ns * 1.1 + 150_000_000, (elapsed_ns, want_ns)
    assert max_late_ns < 100_000_000, max_late_ns
