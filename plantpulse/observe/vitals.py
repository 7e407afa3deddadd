"""One read of every stats snapshot the running parts keep: plain data, no behaviour.

``parts.Observed.vitals()`` builds it; ``ready.readiness`` and the metrics collector only read
it, so a probe and a scrape see one consistent moment and are testable without a pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from plantpulse.collectors.runner import SourceStatus
from plantpulse.notifier.escalator import NotifierStats
from plantpulse.rules.engine import EngineStats
from plantpulse.store.spool import SpoolStats
from plantpulse.stream.pipeline import PipelineStats, Recovery

__all__ = ["Phase", "PushVitals", "QueueVitals", "Vitals"]

Phase = Literal["starting", "running", "stopping"]
"""starting: restoring the engine and replaying the spool, collectors not yet running;
running: collectors deliver and the engine evaluates; stopping: a stop is under way."""


@dataclass(frozen=True, slots=True)
class QueueVitals:
    samples: int  # held between the input log and the engine
    capacity: int  # ``stream.queue_size``
    waits: int  # times a collector had to wait for room (backpressure)


@dataclass(frozen=True, slots=True)
class PushVitals:
    """The plain pushes to ``notifications.urls``."""

    queued: int
    counts: Mapping[str, int]  # sent, failed, dropped


@dataclass(frozen=True, slots=True)
class Vitals:
    phase: Phase
    wall_ns: int  # wall clock of this read (watermark lag)
    monotonic: float  # the runners' clock of this read (time in a source's state)
    spool: SpoolStats
    spool_max_bytes: int
    sources: tuple[SourceStatus, ...] = ()
    pipeline: PipelineStats | None = None
    queue: QueueVitals | None = None
    engine: EngineStats | None = None
    watermark: int | None = None  # the engine's: the largest of the sources'
    watermarks: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # per source
    recovery: Recovery | None = None  # what the start re-evaluated from the spool
    notifier: NotifierStats | None = None  # the escalation notifier (a team is configured)
    push: PushVitals | None = None
    tags: int = 0
    rules: int = 0
