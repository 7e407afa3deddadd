"""Assembles and runs the one-process pipeline: collectors -> input log -> engine -> store, notifier.

``run_pipeline`` is shared by ``plantpulse run`` (a plant's config) and ``plantpulse demo``
(a generated config on loopback). It starts in this order: the spool (the input log and the
store's feed; a store that refuses for good, e.g. bad credentials or a failed migration,
raises StoreError here, while an unreachable one is spooled for), with ``approvals:`` on the
approved rules (``approvals.runtime``), the notifier, the engine restored from its snapshot and
the spool records after it, and only then the collectors.
It stops when ``stop`` is set or ``duration`` passes (signals are the caller's business: the
commands install them), in the order that keeps what was handed over: collectors first,
then draining the queue and saving the engine state, the notifier, the approvals, the spool and
the store.
Every step of the stop is bounded by ``stream.stop_timeout``; a step that exceeds it is
logged with what it was doing and left behind, so a stop always ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plantpulse.alerts import AlertEvent
from plantpulse.collectors.registry import build_runner
from plantpulse.config import LoadedConfig, PlantConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.notifier.runtime import start_notifying
from plantpulse.observe.parts import Observed
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store import Store, TagInfo, open_store
from plantpulse.store.spool import SpoolStats, SpoolWriter
from plantpulse.stream.pipeline import Pipeline, PipelineStats, Recovery
from plantpulse.stream.quarantine import QuarantineFile
from plantpulse.stream.state import StateFile
from plantpulse.timefmt import NS_PER_S

if TYPE_CHECKING:
    from plantpulse.approvals.runtime import Approvals

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    stats: PipelineStats
    notifier_counts: dict[str, int]
    spool: SpoolStats
    recovery: Recovery | None = None
    first_evaluation: float | None = None  # seconds from the start of run_pipeline


async def run_pipeline(
    plant: PlantConfig,
    rules: list[Rule],
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    on_alert: Callable[[AlertEvent], None] | None = None,
    on_batch: Callable[[SampleBatch, list[AlertEvent]], None] | None = None,
    started: asyncio.Event | None = None,
    loaded: LoadedConfig | None = None,
) -> RunResult:
    """Run until ``stop`` is set or ``duration`` seconds pass.

    Everything goes to the store through the durable spool, so the pipeline starts and keeps
    evaluating and notifying while the store is down, and replays when it comes back. With
    ``approvals:`` on (``loaded`` given), the approved versions from the change log run instead
    of ``rules`` and newly approved ones take over between two batches (docs/approvals.md)."""
    if plant.approvals is not None and loaded is None:
        raise ValueError("approvals are on: run_pipeline needs the LoadedConfig")
    began = time.monotonic()
    stop = stop or asyncio.Event()
    limit = plant.stream.stop_timeout / NS_PER_S
    tags = TagRegistry(t.name for src in plant.sources for t in src.tags)
    store = open_store(plant.store)
    writer = SpoolWriter(store, plant.store.spool_config, keep_inputs=True)
    await writer.start()
    opening = asyncio.ensure_future(writer.opened())
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait((opening, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not opening.done():  # stopped while the store was still being opened
        opening.cancel()
        await _bounded(writer.stop(drain_timeout=limit), 3 * limit, "closing the spool")
        return RunResult(PipelineStats(), {}, writer.stats())
    if opening.exception() is not None:  # a StoreError: the store refused for good
        await _bounded(writer.stop(drain_timeout=limit), 3 * limit, "closing the spool")
        opening.result()
    observed = Observed(plant, writer)  # what /metrics and the health probes read
    infos = [
        TagInfo(t.name, t.name.rpartition("/")[0], t.unit, t.description)
        for src in plant.sources
        for t in src.tags
    ]
    board = BoardState.for_plant(plant, tags)
    approvals: Approvals | None = None
    routes = None
    try:
        if plant.approvals is not None:
            assert loaded is not None
            from plantpulse.approvals.runtime import start_approvals

            page = (plant.api.public_url or f"http://{plant.api.listen}") if plant.api else None
            approvals = await start_approvals(loaded, page_url=page)
            rules = approvals.live.rules
            if plant.api:
                routes = approvals.routes(plant.api.token.get_secret_value().encode(), store)
        notifying = await start_notifying(
            plant,
            store,
            journal=writer,
            board=board if plant.api else None,
            routes=routes,
            observed=observed,
        )
    except BaseException:  # e.g. an outbox that cannot be opened: leave the spool closed and clean
        if approvals is not None:
            await _bounded(approvals.close(), limit, "closing the approvals")
        await _bounded(writer.stop(drain_timeout=limit), 3 * limit, "closing the spool")
        raise
    registering = asyncio.create_task(_register_when_up(writer, store, infos), name="register tags")

    def observe(batch: SampleBatch, events: list[AlertEvent]) -> None:
        board.observe(batch, events)
        if on_batch is not None:
            on_batch(batch, events)

    quarantine = QuarantineFile(plant.store.state_dir)
    pipeline = Pipeline(
        Engine(rules, tags),
        tags,
        writer,
        notifying.notifier,
        config=plant.stream,
        on_shift=notifying.on_shift,
        on_alert=on_alert,
        on_batch=observe if plant.api else on_batch,
        state=StateFile(plant.store.state_dir),
        known=notifying.outbox.known if notifying.outbox is not None else None,
        quarantine=quarantine,
        rules=approvals.live if approvals is not None else None,
    )
    try:
        recovery = await pipeline.recover()
    except BaseException:
        registering.cancel()
        await _bounded(notifying.stop(), limit, "stopping the notifier")
        if approvals is not None:
            await _bounded(approvals.close(), limit, "closing the approvals")
        await _bounded(writer.stop(drain_timeout=limit), 3 * limit, "closing the spool")
        raise
    runners = [build_runner(src, pipeline.sink.bind(src.name)) for src in plant.sources]
    processing = asyncio.create_task(pipeline.run(stop), name="pipeline")
    collecting = [asyncio.create_task(r.run(), name=f"source {r.name}") for r in runners]
    log.info(
        "running: %d sources, %d tags, %d rules, store %s",
        len(runners),
        len(tags),
        len(rules),
        _safe_url(plant.store.url),
    )
    observed.running(
        pipeline, runners, escalation=notifying.escalation, push=notifying.push, recovery=recovery
    )
    if started is not None:
        started.set()
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        # the pipeline task only ends on its own by failing: then stop rather than look alive
        await asyncio.wait((stopping, processing), timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        observed.stopping()
        log.info("stopping: collectors first, then draining %d queued samples", len(pipeline.queue))
        for task in collecting:
            task.cancel()
        await _bounded(asyncio.gather(*collecting, return_exceptions=True), limit, "stopping the collectors")
        if stuck := [t.get_name() for t in collecting if not t.done()]:
            log.warning("stopping: still closing: %s; their further input is refused", ", ".join(stuck))
        pipeline.sink.close()
        stop.set()
        if not await _bounded(asyncio.shield(processing), limit, "draining the queue into the engine"):
            processing.cancel()
            cancelled = asyncio.gather(processing, return_exceptions=True)
            await _bounded(cancelled, limit, "cancelling the pipeline")
        await _bounded(notifying.stop(), limit, "stopping the notifier")
        if approvals is not None:  # after the pipeline: it records the last switch in the change log
            await _bounded(approvals.close(), limit, "closing the approvals")
        registering.cancel()
        await _bounded(writer.stop(drain_timeout=limit), 3 * limit, "flushing the spool to the store")
        quarantine.close()
    if processing.done() and not processing.cancelled() and (failed := processing.exception()) is not None:
        raise failed
    first = None if pipeline.first_evaluation is None else pipeline.first_evaluation - began
    return RunResult(pipeline.stats, notifying.counts, writer.stats(), recovery, first)


async def _bounded(step: Awaitable[object], seconds: float, what: str) -> bool:
    """Await ``step`` for at most ``seconds``; False (and one log line) when it took longer."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("stopping: %s did not finish within %.0f s; going on without it", what, seconds)
        return False
    except Exception:
        log.exception("stopping: %s failed; going on", what)
        return False
    return True


async def _register_when_up(writer: SpoolWriter, store: Store, infos: list[TagInfo]) -> None:
    """Tag metadata (units, descriptions) is written once the store takes writes."""
    await writer.wait_until(available=True)
    await store.register_tags(infos)


def _safe_url(url: str) -> str:
    """The store URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.partition(':')[0]}:***@{host}"
