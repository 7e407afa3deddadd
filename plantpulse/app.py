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
from plantpulse.config import PlantConfig
from plantpulse.notifier.push import PushNotifier
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import TagRegistry
from plantpulse.store import TagInfo, open_store
from plantpulse.stream.pipeline import DirectWriter, Pipeline, PipelineStats

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    stats: PipelineStats
    notifier_counts: dict[str, int]


async def run_pipeline(
    plant: PlantConfig,
    rules: list[Rule],
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    on_alert: Callable[[AlertEvent], None] | None = None,
    started: asyncio.Event | None = None,
) -> RunResult:
    """Run until ``stop`` is set, ``duration`` seconds pass, or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    tags = TagRegistry(t.name for src in plant.sources for t in src.tags)
    store = open_store(plant.store.url)
    await store.open()
    await store.register_tags(
        [
            TagInfo(t.name, t.name.rpartition("/")[0], t.unit, t.description)
            for src in plant.sources
            for t in src.tags
        ]
    )
    notifier = PushNotifier([u.get_secret_value() for u in plant.notifications.urls])
    pipeline = Pipeline(
        Engine(rules, tags), tags, DirectWriter(store), notifier, config=plant.stream, on_alert=on_alert
    )
    runners = [build_runner(src, pipeline.sink) for src in plant.sources]

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    notifier.start()
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
        await notifier.stop()
        await store.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return RunResult(pipeline.stats, dict(notifier.counts))


def _safe_url(url: str) -> str:
    """The store URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.partition(':')[0]}:***@{host}"
