"""``plantpulse run --role sink``: samples and alert transitions from Kafka into the store, exactly
once; the notifier, escalation and API on what was stored.

Exactly once rests on two ids that a replay derives again:

* a samples message is written as one store batch whose id is ``kafka:<topic>:<partition>:
  <offset>``: the store skips a batch id it holds (``Store.write_samples``), so a sink that
  dies between the store's commit and its Kafka offset commit writes nothing twice;
* an alert transition carries its deterministic alert id: a raise whose alert is stored, or
  a clear of an alert already cleared, is dropped (counted as a duplicate) and not pushed
  again. Evaluators repeat transitions after a worker loss; this is where they end.

Kafka is the sink's buffer: while the store is unavailable the sink retries with backoff and
commits nothing, so the brokers hold the backlog (``kafka.topics.retention``) and other
sinks in the group may take over. Offsets are committed per partition after its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.config import PlantConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.notifier.runtime import start_notifying
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.scaleout.client import aiokafka_options
from plantpulse.scaleout.wire import SamplesReader, decode_alert
from plantpulse.store import Store, TagInfo, open_store

log = logging.getLogger(__name__)

__all__ = ["SinkStats", "StoreSink", "run_sink"]


@dataclass
class SinkStats:
    samples: int = 0
    sample_batches: int = 0
    replayed: int = 0  # batches the store already held (a sink restart at work)
    raised: int = 0
    cleared: int = 0
    duplicates: int = 0  # transitions repeated by an evaluator after a worker loss
    malformed: int = 0


class StoreSink:
    """Applies one message at a time; every write is idempotent (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        samples_topic: str,
        *,
        on_shift: Callable[[str, int], dict[str, list[str]]] | None = None,
        notify: Callable[[Sequence[AlertEvent], dict[str, dict[str, list[str]]]], None] | None = None,
        board: BoardState | None = None,
    ) -> None:
        self.store = store
        self.samples_topic = samples_topic
        self.on_shift = on_shift
        self.notify = notify
        self.board = board
        self.tags = board.tags if board is not None else TagRegistry()
        self.reader = SamplesReader(self.tags)
        self.stats = SinkStats()
        self._bad_logged: set[str] = set()

    async def apply(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        """Raises StoreUnavailable (retry the same message later) and nothing else."""
        try:
            if topic == self.samples_topic:
                await self._samples(topic, partition, offset, value)
            else:
                await self._alert(topic, partition, offset, value)
        except ValueError as e:
            self.stats.malformed += 1
            cause = f"{topic}: {type(e).__name__}"
            if cause not in self._bad_logged:
                self._bad_logged.add(cause)
                where = f"{topic}:{partition}:{offset}"
                log.error("skipping malformed message %s: %s (further ones counted)", where, e)  # noqa: TRY400
        except StoreUnavailable:
            raise
        except StoreError as e:
            self.stats.malformed += 1
            log.error("store refused message %s:%d:%d for good: %s", topic, partition, offset, e)  # noqa: TRY400

    async def _samples(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        msg = self.reader.read(value)
        if msg.batch is None or not len(msg.batch):
            return
        if await self.store.write_samples(msg.batch, f"kafka:{topic}:{partition}:{offset}"):
            self.stats.samples += len(msg.batch)
            self.stats.sample_batches += 1
            if self.board is not None:
                self.board.observe(msg.batch, [])
        else:
            self.stats.replayed += 1

    async def _alert(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        msg = decode_alert(value)
        ev = msg.event
        stored = await self.store.alert(ev.alert_id)
        if stored is not None and (ev.kind == "raised" or stored.cleared_at is not None):
            self.stats.duplicates += 1
            return
        on_shift: dict[str, dict[str, list[str]]] = {}
        if ev.kind == "raised" and self.on_shift is not None:
            on_shift[ev.alert_id] = self.on_shift(ev.asset, ev.raised_at)
        await self.store.write_alert_events([ev], f"kafka:{topic}:{partition}:{offset}", on_shift)
        if ev.kind == "raised":
            self.stats.raised += 1
        else:
            self.stats.cleared += 1
        if self.board is not None:
            self.board.observe(SampleBatch.empty(self.tags), [ev])
        if msg.push and self.notify is not None:
            self.notify([ev], on_shift)


async def _open(store: Store, stop: asyncio.Event) -> bool:
    delay = 0.2
    while not stop.is_set():
        try:
            await store.open()
            return True
        except StoreUnavailable as e:
            log.warning("store unavailable (%s); retrying in %.1f s", e, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
    return False


async def run_sink(
    plant: PlantConfig,
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    on_alert: Callable[[AlertEvent], None] | None = None,
) -> SinkStats:
    """Consume until ``stop`` or ``duration``; commit what was written, return."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import CommitFailedError, IllegalStateError

    assert plant.kafka is not None
    cfg = plant.kafka
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    store = open_store(plant.store)
    tags = TagRegistry(t.name for src in plant.sources for t in src.tags)
    board = BoardState(tags, plant.site.name)
    if not await _open(store, stop):
        return SinkStats()
    await store.register_tags(
        [
            TagInfo(t.name, t.name.rpartition("/")[0], t.unit, t.description)
            for src in plant.sources
            for t in src.tags
        ]
    )
    notifying = await start_notifying(plant, store, board=board if plant.api else None)
    notifier = notifying.notifier

    def notify(events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        if notifier is not None:
            notifier.submit(events, on_shift)
        if on_alert is not None:
            for e in events:
                on_alert(e)

    sink = StoreSink(store, cfg.topics.samples, on_shift=notifying.on_shift, notify=notify, board=board)
    session_ms = cfg.session_timeout // 1_000_000
    consumer = AIOKafkaConsumer(
        cfg.topics.samples,
        cfg.topics.alerts,
        **aiokafka_options(cfg),
        group_id=f"{cfg.group}-sink",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 10, 100),
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    log.info(
        "sinking %s and %s into the %s store",
        cfg.topics.samples,
        cfg.topics.alerts,
        plant.store.url.partition(":")[0],
    )
    try:
        while not stop.is_set() and (deadline is None or loop.time() < deadline):
            batches: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, msgs in batches.items():
                done = await _apply_all(sink, tp, msgs, stop)
                if done is None:
                    continue
                try:
                    await consumer.commit({TopicPartition(tp.topic, tp.partition): done + 1})
                except (
                    CommitFailedError,
                    IllegalStateError,
                ) as e:  # revoked: the next owner writes again, idempotently
                    log.info("offset commit for %s:%d not taken (%s)", tp.topic, tp.partition, e)
    finally:
        await consumer.stop()
        await notifying.stop()
        await store.close()
    return sink.stats


async def _apply_all(sink: StoreSink, tp: Any, msgs: Sequence[Any], stop: asyncio.Event) -> int | None:
    """Apply messages in order; on a store outage retry the same message with backoff. Returns
    the last offset applied (None if none was)."""
    done: int | None = None
    delay = 0.2
    for m in msgs:
        while True:
            try:
                await sink.apply(tp.topic, tp.partition, m.offset, m.value)
                break
            except StoreUnavailable as e:
                log.warning(
                    "store unavailable (%s); holding %s:%d at offset %d", e, tp.topic, tp.partition, m.offset
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return done
                delay = min(delay * 2, 30.0)
        done = m.offset
    return done
