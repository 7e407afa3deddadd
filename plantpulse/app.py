"""Assembles and runs the one-process pipeline: collectors -> stream -> engine -> store, notifier.

``run_pipeline`` is shared by ``plantpulse run`` (a plant's config) and ``plantpulse demo``
(a generated config on loopback). It installs SIGINT/SIGTERM handlers that stop the
collectors first, then drain the queue, flush the store and the notifier, in that order,
so nothing a collector handed over is lost on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from plantpulse.alerts import AlertEvent
from plantpulse.collectors.registry import build_runner
from plantpulse.config import LoadedConfig, PlantConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.notifier.runtime import start_notifying
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store import Store, TagInfo, open_store
from plantpulse.store.spool import SpoolStats, SpoolWriter
from plantpulse.stream.pipeline import Pipeline, PipelineStats

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    stats: PipelineStats
    notifier_counts: dict[str, int]
    spool: SpoolStats


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
    """Run until ``stop`` is set, ``duration`` seconds pass, or SIGINT/SIGTERM arrives.

    Everything goes to the store through the durable spool, so the pipeline starts and keeps
    evaluating and notifying while the store is down, and replays when it comes back. With
    ``approvals:`` on (``loaded`` given), the approved versions from the change log run instead
    of ``rules`` and newly approved ones take over between two batches (docs/approvals.md)."""
    stop = stop or asyncio.Event()
    approvals = None
    if plant.approvals is not None:
        if loaded is None:
            raise ValueError("approvals are on: run_pipeline needs the LoadedConfig")
        from plantpulse.approvals.runtime import start_approvals

        page = (plant.api.public_url or f"http://{plant.api.listen}") if plant.api else None
        approvals = await start_approvals(loaded, stop=stop, page_url=page)
        rules = approvals.live.rules
    tags = TagRegistry(t.name for src in plant.sources for t in src.tags)
    store = open_store(plant.store)
    writer = SpoolWriter(store, plant.store.spool_config)
    await writer.start()
    infos = [
        TagInfo(t.name, t.name.rpartition("/")[0], t.unit, t.description)
        for src in plant.sources
        for t in src.tags
    ]
    registering = asyncio.create_task(_register_when_up(writer, store, infos), name="register tags")
    board = BoardState(tags, plant.site.name)
    routes = (
        approvals.routes(plant.api.token.get_secret_value().encode(), store)
        if approvals and plant.api
        else None
    )
    notifying = await start_notifying(
        plant, store, ready=lambda: writer.wait_until(available=True), board=board if plant.api else None,
        routes=routes,
    )  # fmt: skip

    def observe(batch: SampleBatch, events: list[AlertEvent]) -> None:
        board.observe(batch, events)
        if on_batch is not None:
            on_batch(batch, events)

    pipeline = Pipeline(
        Engine(rules, tags),
        tags,
        writer,
        notifying.notifier,
        config=plant.stream,
        on_shift=notifying.on_shift,
        on_alert=on_alert,
        on_batch=observe if plant.api else on_batch,
        rules=approvals.live if approvals is not None else None,
    )
    runners = [build_runner(src, pipeline.sink) for src in plant.sources]

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    processing = asyncio.create_task(pipeline.run(stop), name="pipeline")
    collecting = [asyncio.create_task(r.run(), name=f"source {r.name}") for r in runners]
    log.info(
        "running: %d sources, %d tags, %d rules, store %s",
        len(runners),
        len(tags),
        len(rules),
        _safe_url(plant.store.url),
    )
    if started is not None:
        started.set()
    try:
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    finally:
        log.info("stopping: collectors first, then draining %d queued samples", len(pipeline.queue))
        for task in collecting:
            task.cancel()
        await asyncio.gather(*collecting, return_exceptions=True)
        stop.set()
        await processing
        await notifying.stop()
        if approvals is not None:
            await approvals.close()
        registering.cancel()
        await writer.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return RunResult(pipeline.stats, notifying.counts, writer.stats())


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
