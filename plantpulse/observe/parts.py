"""The running parts that ``/metrics`` and the health probes read, handed over by app.py.

The HTTP API starts before the pipeline exists (acknowledge links must work during a long
spool replay), so the parts arrive in steps: ``Observed(plant, writer)`` when the spool is
open, ``running(...)`` once the engine is restored and the collectors are built, and
``stopping()`` as the stop begins. Until ``running`` the probes answer "starting".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from types import MappingProxyType

from plantpulse.collectors.runner import CollectorRunner
from plantpulse.config import PlantConfig
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.push import PushNotifier
from plantpulse.observe.config import ReadyConfig
from plantpulse.observe.vitals import Phase, PushVitals, QueueVitals, Vitals
from plantpulse.store.spool import SpoolWriter
from plantpulse.stream.pipeline import Pipeline, Recovery

__all__ = ["Observed"]


class Observed:
    def __init__(
        self,
        plant: PlantConfig,
        writer: SpoolWriter,
        *,
        wallclock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``monotonic`` must be the runners' clock (``SourceStatus.since`` is on it)."""
        self.ready = plant.api.ready if plant.api is not None else ReadyConfig()
        self.metrics_token = plant.api.metrics_token if plant.api is not None else None
        self.writer = writer
        self.phase: Phase = "starting"
        self._spool_max = plant.store.spool.max_bytes
        self._tags = sum(len(src.tags) for src in plant.sources)
        self._wallclock = wallclock
        self._monotonic = monotonic
        self._pipeline: Pipeline | None = None
        self._runners: tuple[CollectorRunner, ...] = ()
        self._escalation: EscalationNotifier | None = None
        self._push: PushNotifier | None = None
        self._recovery: Recovery | None = None

    def running(
        self,
        pipeline: Pipeline,
        runners: Sequence[CollectorRunner],
        *,
        escalation: EscalationNotifier | None = None,
        push: PushNotifier | None = None,
        recovery: Recovery | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._runners = tuple(runners)
        self._escalation, self._push, self._recovery = escalation, push, recovery
        self.phase = "running"

    def stopping(self) -> None:
        self.phase = "stopping"

    def vitals(self) -> Vitals:
        """Every snapshot, read now (in the event loop, between two of its steps)."""
        p = self._pipeline
        push = self._push
        return Vitals(
            phase=self.phase,
            wall_ns=self._wallclock(),
            monotonic=self._monotonic(),
            spool=self.writer.stats(),
            spool_max_bytes=self._spool_max,
            sources=tuple(r.status() for r in self._runners),
            pipeline=dataclasses.replace(p.stats) if p is not None else None,
            queue=QueueVitals(len(p.queue), p.queue.capacity, p.queue.waits) if p is not None else None,
            engine=p.engine.stats if p is not None else None,
            watermark=p.watermark if p is not None else None,
            watermarks=MappingProxyType(dict(p.watermarks)) if p is not None else MappingProxyType({}),
            recovery=self._recovery,
            notifier=self._escalation.stats() if self._escalation is not None else None,
            push=PushVitals(push.queued, MappingProxyType(dict(push.counts))) if push is not None else None,
            tags=len(p.tags) if p is not None else self._tags,
            rules=len(p.engine.rules) if p is not None else 0,
        )
