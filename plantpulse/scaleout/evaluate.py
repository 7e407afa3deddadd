"""``plantpulse run --role evaluate``: a faust-streaming worker evaluating the samples partitions
it is assigned, with each partition's state in a faust table backed by a changelog topic.

Choices, and why:

* One agent over the samples topic takes micro-batches (``noack_take``: up to 256 messages or
  ``stream.batch_interval``), groups them by partition and hands each group to that
  partition's ``PartitionState`` (the rules engine, pure). Messages are binary batches, so
  the per-message cost of faust is paid per batch, not per sample.
* State goes to the table every ``kafka.checkpoint`` (one key per partition, the table's
  ``partition_for_key`` pins it to the changelog partition of the same number, so faust's
  co-partitioned assignment hands it to whoever evaluates that partition). Messages are
  acknowledged only once a checkpoint holds them, and faust flushes the changelog before it
  commits offsets: the committed offset never passes the state, and the offset inside the
  checkpoint skips what it already holds (``partition.py``).
* Alert transitions are sent at once, and a checkpoint first waits until the brokers have
  acknowledged every transition sent so far: a worker lost in between leaves a state that
  raises them again, with the same ids, which the sink drops. The reverse (state saved, alert
  lost) cannot happen; a send that fails stops the worker, so that another re-derives it.
* ``stream_wait_empty`` is off: a rebalance does not wait for unacknowledged messages, whose
  effects the next owner re-derives from the checkpoint. A revoked partition's state is
  dropped at once; messages of it still in the batch at hand are left to the new owner.
* Messages must reach a partition's state without a gap, and the state knows the next offset
  it needs: when the first message delivered is later, the consumer is sent back to it.
  Two gaps were seen (docs/scale-out.md): faust drops messages fetched while a rebalance
  holds the flow of a partition that has no committed offset yet, and on Tansu, which
  reports a partition's end as the last produce request's first offset + 1, faust's table
  recovery can stop one checkpoint short, behind the committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import TP, EventT

from plantpulse.config import PlantConfig
from plantpulse.errors import PlantPulseError
from plantpulse.rules.model import Rule
from plantpulse.scaleout.client import faust_credentials
from plantpulse.scaleout.config import STATE_TABLE, KafkaConfig
from plantpulse.scaleout.partition import Incoming, PartitionState, Transition
from plantpulse.scaleout.wire import encode_alert
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)

__all__ = ["EvaluateStats", "Evaluator", "EvaluatorFailed", "build_app", "run_evaluate"]

TAKE_MESSAGES = 256


class EvaluatorFailed(PlantPulseError):
    """The worker stopped evaluating; it leaves the group so that another takes over."""


class PartitionTable(faust.Table[int, bytes]):
    """Keyed by samples partition number; the key is also the changelog partition."""

    def partition_for_key(self, key: Any) -> int:
        return int(key)


@dataclass
class EvaluateStats:
    messages: int = 0
    samples: int = 0
    skipped: int = 0
    malformed: int = 0
    raised: int = 0
    cleared: int = 0
    checkpoints: int = 0
    partitions: list[int] = field(default_factory=list)


class Evaluator:
    """The worker's partitions: their states, the messages awaiting a checkpoint, and the
    sequence step -> send alerts -> (later) checkpoint -> ack, under one lock."""

    def __init__(
        self,
        app: faust.App,
        rules: Sequence[Rule],
        cfg: KafkaConfig,
        table: PartitionTable,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.app = app
        self.rules = list(rules)
        self.cfg = cfg
        self.table = table
        self.alerts = app.topic(
            cfg.topics.alerts, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=cfg.topics.alert_partitions,
        )  # fmt: skip
        self.states: dict[int, PartitionState] = {}
        self.pending: dict[int, list[EventT[Any]]] = defaultdict(list)
        self.lock = asyncio.Lock()
        self.stats = EvaluateStats()
        self.on_transition = on_transition
        self.failed = asyncio.Event()
        self._rewound: set[int] = set()
        self.unconfirmed: list[Awaitable[Any]] = []

    def _assigned(self) -> set[int]:
        topic = self.cfg.topics.samples
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    async def _state(self, p: int) -> PartitionState:
        st = self.states.get(p)
        if st is None:
            blob = self.table.get(p)
            st = PartitionState(self.rules, blob)
            if blob is None:  # nothing evaluated yet: from the oldest message the brokers keep
                tp = TP(self.cfg.topics.samples, p)
                st.offset = (await self.app.consumer.earliest_offsets(tp)).get(tp, 0) - 1
            self.states[p] = st
            log.info(
                "partition %d: %s at offset %d", p, "restored" if blob else "starts fresh", st.offset + 1
            )
        return st

    async def _delivered_in_order(self, p: int, st: PartitionState, evs: Sequence[EventT[Any]]) -> bool:
        """False (and the consumer sent back) when messages before these were never delivered:
        to a partition without a committed offset faust may hand only what comes after the
        messages fetched during the rebalance, and on Tansu the table may be restored one
        checkpoint short of the committed offset. The state knows the next offset it needs,
        so it asks for exactly that."""
        want = st.offset + 1
        first = evs[0].message.offset
        if first <= want:
            self._rewound.discard(p)
            return True
        if p not in self._rewound:
            log.warning(
                "partition %d: offsets %d..%d were not delivered; reading from %d again",
                p,
                want,
                first - 1,
                want,
            )
            self._rewound.add(p)
        await self.app.consumer.seek(TP(self.cfg.topics.samples, p), want)
        return False

    async def handle(self, events: Sequence[EventT[Any]]) -> None:
        by_partition: dict[int, list[EventT[Any]]] = defaultdict(list)
        for ev in events:
            by_partition[ev.message.partition].append(ev)
        async with self.lock:
            assigned = self._assigned()
            out: list[Transition] = []
            for p, evs in by_partition.items():
                if p not in assigned:
                    continue  # revoked while buffered: the new owner evaluates these
                st = await self._state(p)
                if not await self._delivered_in_order(p, st, evs):
                    continue
                before = (st.stats.messages, st.stats.samples, st.stats.skipped, st.stats.malformed)
                out += st.step([Incoming(e.message.offset, e.value) for e in evs])
                self.pending[p].extend(evs)
                s = st.stats
                self.stats.messages += s.messages - before[0]
                self.stats.samples += s.samples - before[1]
                self.stats.skipped += s.skipped - before[2]
                self.stats.malformed += s.malformed - before[3]
            if out:
                await self._send(out)

    async def _send(self, transitions: Sequence[Transition]) -> None:
        """Publish; ``checkpoint`` waits for the brokers' acknowledgements."""
        for t in transitions:
            key, value = t.event.alert_id.encode(), encode_alert(t.event, t.push)
            self.unconfirmed.append(await self.alerts.send(key=key, value=value, force=True))
            if t.event.kind == "raised":
                self.stats.raised += 1
            else:
                self.stats.cleared += 1
            if self.on_transition is not None:
                self.on_transition(t)

    async def checkpoint(self) -> None:
        """Once every transition sent is acknowledged, write the state of every partition with
        unacknowledged messages, then ack them."""
        async with self.lock:
            try:
                await asyncio.gather(*self.unconfirmed)
            except Exception:
                log.exception("alert transitions were not delivered; leaving the group")
                self.failed.set()
                return
            self.unconfirmed.clear()
            assigned = self._assigned()
            for p, evs in list(self.pending.items()):
                if p in assigned and p in self.states:
                    self.table[p] = self.states[p].checkpoint()
                    self.stats.checkpoints += 1
                    for ev in evs:
                        ev.ack()
                del self.pending[p]

    async def revoked(self, tps: set[TP]) -> None:
        topic = self.cfg.topics.samples
        gone = {tp.partition for tp in tps if tp.topic == topic}
        async with self.lock:
            for p in gone:
                self.states.pop(p, None)
                self.pending.pop(p, None)
        if gone:
            log.info("partitions %s revoked", sorted(gone))

    def assigned(self) -> None:
        now = sorted(self._assigned())
        if now != self.stats.partitions:
            log.info("evaluating partitions %s", now)
        self.stats.partitions = now


def build_app(
    plant: PlantConfig,
    rules: Sequence[Rule],
    datadir: str,
    *,
    on_transition: Callable[[Transition], None] | None = None,
) -> tuple[faust.App, Evaluator]:
    assert plant.kafka is not None
    cfg = plant.kafka
    session = cfg.session_timeout / NS_PER_S
    app = faust.App(
        f"{cfg.group}-evaluate",
        broker=[f"kafka://{b}" for b in cfg.brokers],
        broker_credentials=faust_credentials(cfg),
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=cfg.partitions,
        topic_replication_factor=cfg.replication,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        consumer_max_fetch_size=8 << 20,
        broker_session_timeout=session,
        broker_rebalance_timeout=session,
        broker_heartbeat_interval=max(session / 10, 0.1),
        table_standby_replicas=1,
    )
    samples = app.topic(
        cfg.topics.samples, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=cfg.partitions,
    )  # fmt: skip
    table = PartitionTable(
        app,
        name=STATE_TABLE,
        value_type=bytes,
        partitions=cfg.partitions,
        beacon=app.tables.beacon,
        help="rules engine state per samples partition (plantpulse.scaleout.partition)",
    )
    app.tables.add(table)
    ev = Evaluator(app, rules, cfg, table, on_transition)
    within = plant.stream.batch_interval / NS_PER_S

    async def evaluate(stream: faust.StreamT[Any]) -> None:
        try:
            async for events in cast(faust.Stream[Any], stream).noack_take(TAKE_MESSAGES, within=within):
                await ev.handle(events)
        finally:
            # faust ends a stream quietly on some errors: a worker that no longer evaluates
            # must not look healthy, so the role stops with an error (and is restarted)
            if not app.should_stop:
                log.error("the evaluating agent stopped unexpectedly; leaving the group")
                ev.failed.set()

    app.agent(samples, name="evaluate")(evaluate)
    app.timer(cfg.checkpoint / NS_PER_S, name="checkpoint")(ev.checkpoint)

    def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> Awaitable[None]:
        return ev.revoked(args[0])  # faust sends (app, revoked TPs)

    def on_complete(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        ev.assigned()

    app.on_partitions_revoked.connect(on_revoked)
    app.on_rebalance_complete.connect(on_complete)
    return app, ev


async def run_evaluate(
    plant: PlantConfig,
    rules: Sequence[Rule],
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    on_transition: Callable[[Transition], None] | None = None,
) -> EvaluateStats:
    """Run a worker until ``stop`` or ``duration``; checkpoint, then leave the group."""
    from faust.contrib.asgi import faust_app_running

    stop = stop or asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="plantpulse-faust-") as datadir:
        app, ev = build_app(plant, rules, datadir, on_transition=on_transition)
        async with faust_app_running(app, stop_timeout=30):
            log.info("evaluating %d rules as a member of %s", len(rules), app.conf.id)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(ev.failed.wait())]
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if not ev.failed.is_set():
                await ev.checkpoint()
    if ev.failed.is_set():
        raise EvaluatorFailed("the evaluating agent stopped unexpectedly (see the log above)")
    return ev.stats
