"""The scaled-out deployment on real parts: Tansu on loopback, evaluate workers and the sink as
``plantpulse run --role ...`` subprocesses, the collect role's sink and publisher fed with the
demo line's exact truth.

Each test ends with the SQLite store holding exactly the scenario's expected alerts, which is
what the single-process pipeline gives on the same input (checked here too, and pinned for the
engine by tests/simulators/test_demo_scenario.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.config import SpoolConfig
from plantpulse.rules.engine import Engine
from plantpulse.samples import Sample, TagRegistry
from plantpulse.scaleout.partition import PartitionState
from plantpulse.scaleout.partitioning import Partitioner
from plantpulse.scaleout.tansu import TansuBroker
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline
from tests.scaleout import scenario as sc
from tests.scaleout.conftest import Feeder, Role, create_topics, plant_of, roles, until, write_plant

pytestmark = pytest.mark.slow

DB = "plant.db"


async def single_process(samples: list[Sample], chunk: int, spool: Path) -> list[sc.AlertKey]:
    """The single-process pipeline's evaluation over the same input, in the same chunks (its
    spool without fsync, into a SQLite store of its own)."""
    seen: list[AlertEvent] = []
    tags = TagRegistry(sc.scenario().tag_names())
    store = SQLiteStore(f"sqlite:///{spool.with_suffix('.db')}")
    async with SpoolWriter(store, SpoolConfig(dir=spool, fsync=False)) as writer:
        pipeline = Pipeline(Engine(sc.rules(), tags), tags, writer, on_alert=seen.append)
        for i in range(0, len(samples), chunk):
            await pipeline.sink.put(samples[i : i + chunk])
            await pipeline.step()
    return sc.alerts_of(seen)


async def stored_alerts(db: Path) -> tuple[list[sc.AlertKey], dict[str, list[str]]]:
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        alerts = await store.alerts()
        journal = {a.id: [j.action for j in await store.journal(a.id)] for a in alerts}
        keys = sorted(
            (a.rule, a.tag, a.raised_at - sc.START, None if a.cleared_at is None else a.cleared_at - sc.START)
            for a in alerts
        )
        return keys, journal
    finally:
        await store.close()


async def cleared_alerts(db: Path, want: int) -> list[sc.AlertKey]:
    """The stored alerts once ``want`` of them have cleared (the sink, another process, writes)."""

    async def check() -> list[sc.AlertKey] | None:
        if not await asyncio.to_thread(db.exists):
            return None
        keys, _ = await stored_alerts(db)
        return keys if sum(1 for k in keys if k[3] is not None) >= want else None

    return await until(check, 40)


async def evaluators(n: int, config: Path) -> list[Role]:
    return [Role("evaluate", config, f"evaluate-{i}") for i in range(n)]


async def settled(workers: list[Role], partitions: int) -> None:
    """Until the workers' last assignments split all partitions between them."""

    async def check() -> bool:
        got = [w.partitions() for w in workers]
        return all(got) and sorted(p for g in got for p in g) == list(range(partitions))

    await until(check, 40)


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_scenario_gives_its_alerts_through_kafka(
    tmp_path: Path, broker: TansuBroker, workers: int
) -> None:
    config = write_plant(tmp_path, broker)
    plant = plant_of(config)
    await create_topics(plant)
    truth = sc.truth()
    assert await single_process(truth, 2_000, tmp_path / "single.spool") == sc.expected()
    async with roles(*await evaluators(workers, config), Role("sink", config)) as started:
        await settled(list(started[:workers]), 4)
        async with Feeder(plant) as feeder:
            await feeder.feed(truth)
        got = await cleared_alerts(tmp_path / DB, len(sc.expected()))
    assert got == sc.expected()
    _, journal = await stored_alerts(tmp_path / DB)
    assert all(actions == ["raised", "cleared"] for actions in journal.values()), journal


async def checkpointed(plant_config: Path, partition: int, watermark: int) -> None:
    """Until the changelog holds a checkpoint of ``partition`` whose watermark reached ``watermark``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    plant = plant_of(plant_config)
    assert plant.kafka is not None
    consumer = AIOKafkaConsumer(bootstrap_servers=plant.kafka.brokers, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(plant.kafka.changelog_topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(20):
            while True:
                for m in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    st = PartitionState(sc.rules(), m.value)
                    if st.watermark is not None and st.watermark >= watermark:
                        return
    finally:
        await consumer.stop()


async def test_a_worker_killed_during_a_pending_for_raises_the_alert_once(
    tmp_path: Path, broker: TansuBroker
) -> None:
    """weld02's current deviates from 8 s; the alert is due at 11 s. The worker evaluating
    weld02 checkpoints the pending condition at 9.5 s and is SIGKILLed; the other worker takes
    its partitions over from the changelog and raises the alert once, at 11 s."""
    config = write_plant(tmp_path, broker)
    plant = plant_of(config)
    await create_topics(plant)
    tag = "line1/weld02/current"
    part = Partitioner(sc.scenario().tag_names(), sc.rules(), 4).partition(tag)
    truth = sc.truth()
    cut = sc.START + 9_500_000_000
    before = [s for s in truth if s.ts < cut]
    after = [s for s in truth if s.ts >= cut]
    workers = await evaluators(2, config)
    async with roles(*workers, Role("sink", config)):
        await settled(workers, 4)
        owner = next(w for w in workers if part in w.partitions())
        survivor = next(w for w in workers if w is not owner)
        async with Feeder(plant) as feeder:
            await feeder.feed(before)
            await checkpointed(config, part, cut - 100_000_000)
            owner.kill()
            await feeder.feed(after)
            await survivor.wait_for(rf"partition {part}: restored at offset \d+")
        got = await cleared_alerts(tmp_path / DB, len(sc.expected()))
    assert got == sc.expected()
    keys, journal = await stored_alerts(tmp_path / DB)
    assert all(actions == ["raised", "cleared"] for actions in journal.values()), journal
    deviation = [k for k in keys if k[1] == tag]
    assert deviation == [("weld-current-deviation", tag, 11_000_000_000, 19_000_000_000)]


def checksum(rows: list[tuple[int, str, float, int]]) -> str:
    h = hashlib.sha256()
    for ts, tag, value, quality in sorted(rows, key=lambda r: (r[0], r[1])):
        h.update(f"{ts}|{tag}|{'nan' if math.isnan(value) else repr(value)}|{quality}\n".encode())
    return h.hexdigest()


async def stored_samples(db: Path) -> list[tuple[int, str, float, int]]:
    if not await asyncio.to_thread(db.exists):
        return []
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        reg = TagRegistry()
        batch = await store.read_samples(sc.scenario().tag_names(), 0, 2**62, reg)
        return [(s.ts, s.tag, s.value, int(s.quality)) for s in batch.samples()]
    finally:
        await store.close()


async def test_a_sink_killed_mid_stream_stores_everything_exactly_once(
    tmp_path: Path, broker: TansuBroker
) -> None:
    config = write_plant(tmp_path, broker)
    plant = plant_of(config)
    await create_topics(plant)
    truth = sc.truth()
    half = len(truth) // 2
    sink = Role("sink", config)
    async with roles(Role("evaluate", config), sink), Feeder(plant) as feeder:
        await feeder.feed(truth[:half])
        await until(lambda: stored_samples(tmp_path / DB), 30)
        sink.kill()
        await sink.proc.wait()  # type: ignore[union-attr]
        await feeder.feed(truth[half:])
        again = await Role("sink", config, "sink-again").start()
        try:
            got = await cleared_alerts(tmp_path / DB, len(sc.expected()))

            async def complete() -> list[tuple[int, str, float, int]] | None:
                rows = await stored_samples(tmp_path / DB)
                return rows if len(rows) >= len(truth) else None

            rows = await until(complete, 30)
        finally:
            await again.stop()
    assert got == sc.expected()
    want = [(s.ts, s.tag, s.value, int(s.quality)) for s in truth]
    assert len(rows) == len(want)
    assert checksum(rows) == checksum(want)
    _, journal = await stored_alerts(tmp_path / DB)
    assert all(actions == ["raised", "cleared"] for actions in journal.values()), journal
