"""One samples partition's evaluation: messages in (with their offsets), alert transitions out;
the whole state as one checkpoint blob. Pure code, no I/O, no clock.

    state = PartitionState(rules, checkpoint)        # None: a partition never evaluated
    transitions = state.step(messages)               # skips offsets the state already holds
    blob = state.checkpoint()                        # zlib'd JSON: engine snapshot + offset

Exactly once across worker loss rests on the offset inside the checkpoint: a worker that takes
the partition over restores the last checkpoint and is handed (by the consumer group) every
message after the last committed offset, which is never later than the checkpoint's; messages
the checkpoint already holds are skipped, so the engine sees each message once. Transitions
of re-evaluated messages repeat with the same alert ids, and the sink drops them by id.

The partition's watermark is the largest watermark its messages carried (collectors stamp
every message, heartbeats included), so ``for`` and ``stale:`` fire without new data here.
Each partition has its own tag registry: an engine matches every tag its registry knows, and
must know only the tags of its partition.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.scaleout.wire import Route, SamplesReader

__all__ = ["Incoming", "PartitionState", "Transition"]

CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Incoming:
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Transition:
    event: AlertEvent
    push: bool  # False for what historical samples raised or cleared


@dataclass
class StepStats:
    messages: int = 0
    skipped: int = 0  # already in the checkpoint this state was restored from
    malformed: int = 0
    samples: int = 0


class PartitionState:
    def __init__(self, rules: Sequence[Rule], checkpoint: bytes | None = None) -> None:
        self.tags = TagRegistry()
        self.engine = Engine(rules, self.tags)
        self.reader = SamplesReader(self.tags)
        self.offset = -1  # the last message evaluated
        self.watermark: int | None = None
        self.stats = StepStats()
        if checkpoint is not None:
            doc: dict[str, Any] = json.loads(zlib.decompress(checkpoint))
            if doc.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"unsupported partition checkpoint version {doc.get('version')!r}")
            self.engine.restore(doc["engine"])
            self.offset = int(doc["offset"])
            self.watermark = doc["watermark"]

    def step(self, messages: Sequence[Incoming]) -> list[Transition]:
        """Evaluate messages of this partition in offset order, each batch as it came (a
        collector's batch holds each tag once, the engine's fast shape), then advance to the
        largest watermark they carried. Transitions of historical samples are not pushed."""
        out: list[Transition] = []
        watermark = self.watermark
        for m in messages:
            if m.offset <= self.offset:
                self.stats.skipped += 1
                continue
            self.offset = m.offset
            self.stats.messages += 1
            try:
                msg = self.reader.read(m.value)
            except ValueError:
                self.stats.malformed += 1  # the sink counts, logs and keeps these; here they are skipped
                continue
            if msg.route is Route.MARKER:
                continue  # stored and shown, never evaluated (as in the single-process pipeline)
            if msg.route is not Route.HISTORICAL:
                watermark = msg.watermark if watermark is None else max(watermark, msg.watermark)
            if msg.batch is not None and len(msg.batch):
                self.stats.samples += len(msg.batch)
                push = msg.route is Route.LIVE
                out += [Transition(e, push) for e in evaluate(self.engine, msg.batch, None)]
        out += [Transition(e, True) for e in evaluate(self.engine, None, watermark)]
        self.watermark = watermark
        return out

    def checkpoint(self) -> bytes:
        doc = {
            "version": CHECKPOINT_VERSION,
            "offset": self.offset,
            "watermark": self.watermark,
            "engine": self.engine.snapshot(),
        }
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 1)


def evaluate(engine: Engine, batch: SampleBatch | None, watermark: int | None) -> list[AlertEvent]:
    """The one place the engine is driven: a batch, then the watermark the collectors reported.
    (When the engine takes the watermark as an argument of ``process``, only this changes.)"""
    events = engine.process(batch) if batch is not None and len(batch) else []
    if watermark is not None and (engine.watermark is None or watermark > engine.watermark):
        events += engine.advance(watermark)
    return events
