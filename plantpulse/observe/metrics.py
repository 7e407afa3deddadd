"""``/metrics``: a prometheus_client Collector that reads ``Observed.vitals()`` at scrape time.

Choices, and why:

* **A custom Collector, not Counter objects.** The parts count already (``SourceStatus``,
  ``PipelineStats``, ``EngineStats``, ``SpoolStats``, ``NotifierStats``); mirroring every
  increment into prometheus_client objects would be a second bookkeeping on the hot path
  (per sample) that can drift from the first. Families are built from one read per scrape.
* **One registry per app** (``metrics_registry``), never the process-global ``REGISTRY``:
  tests run many pipelines in one process, and two apps must not see each other's numbers.
  The registry also holds prometheus_client's process, platform and GC collectors.
* **Counters that can appear later start at 0.** ``increase()`` over a series that first
  appears at 1 sees no increase, so every source gets its known error and quarantine causes
  and every escalation outcome from the first scrape on.
* **Counters are since the process started**, except the engine's (samples, late drops,
  alerts per rule), which are restored with its snapshot: Prometheus handles both, as
  counters only have to be monotonic between resets.

The metric names and what each means are listed in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

import plantpulse
from plantpulse.collectors.admission import AHEAD, BEHIND, TAG_LIMIT
from plantpulse.observe.parts import Observed
from plantpulse.observe.ready import readiness
from plantpulse.observe.vitals import Vitals

__all__ = ["ERROR_CAUSES", "PlantCollector", "metrics_registry"]

ERROR_CAUSES = ("unavailable", "authentication", "malformed", "tag", "dropped")
"""Source error causes (``collectors.runner.cause_of``) exported from the start; others when counted."""

QUARANTINE_CAUSES = (AHEAD, BEHIND, TAG_LIMIT)

ESCALATION_OUTCOMES = ("dropped_events", "unrouted", "quarantined", "held", "digests", "cancelled")

URLS_CHANNEL = "notifications.urls"
"""The ``channel`` label of the plain pushes to ``notifications.urls``."""


def metrics_registry(observed: Observed) -> CollectorRegistry:
    """A registry of its own for one app: plantpulse's families and the process's."""
    registry = CollectorRegistry()
    registry.register(PlantCollector(observed))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class PlantCollector(Collector):
    def __init__(self, observed: Observed) -> None:
        self.observed = observed

    def collect(self) -> Iterator[Metric]:
        v = self.observed.vitals()
        info = InfoMetricFamily("plantpulse_build", "plantpulse's version")
        info.add_metric([], {"version": plantpulse.__version__})
        yield info
        ready = readiness(v, self.observed.ready).ok
        yield _gauge("plantpulse_ready", "1 when /api/health/ready answers 200", ready)
        yield from _sources(v)
        yield from _pipeline(v)
        yield from _spool(v)
        yield from _notifier(v)


# attribute of the snapshot -> (metric name, help)
_SOURCE_COUNTERS = {
    "samples": ("plantpulse_source_samples_total", "samples delivered (rate(): samples per second)"),
    "bad_samples": ("plantpulse_source_bad_samples_total", "of them, bad quality (failed reads included)"),
    "historical": ("plantpulse_source_historical_samples_total", "samples replayed from device buffers"),
    "heartbeats": ("plantpulse_source_heartbeats_total", "heartbeats (proof of life without data)"),
    "reconnected": ("plantpulse_source_reconnects_total", "times it was lost and came back"),
    "reconnects": ("plantpulse_source_reconnect_attempts_total", "connection attempts after a failure"),
    "markers": ("plantpulse_source_markers_total", "watchdog stale markers and reconnect gap markers"),
}
_PIPELINE_COUNTERS = {
    "batches": ("plantpulse_pipeline_batches_total", "micro-batches evaluated"),
    "samples": ("plantpulse_pipeline_samples_total", "samples evaluated live (this run)"),
    "not_durable": (
        "plantpulse_pipeline_not_durable_samples_total",
        "samples the spool refused: never stored",
    ),
    "snapshots": ("plantpulse_pipeline_snapshots_total", "engine state snapshots saved"),
}
_ENGINE_COUNTERS = {
    "samples": ("plantpulse_engine_samples_total", "samples the engine evaluated"),
    "bad_samples": ("plantpulse_engine_bad_samples_total", "of them, bad quality"),
    "late_dropped": ("plantpulse_engine_late_samples_dropped_total", "samples behind the watermark, dropped"),
}
_SPOOL_COUNTERS = {
    "spooled": ("plantpulse_spool_appended_records_total", "records appended (fsync'd) to the spool"),
    "fsyncs": ("plantpulse_spool_fsyncs_total", "append groups, one fsync each"),
    "dropped_full": ("plantpulse_spool_refused_records_total", "records refused: spool full or disk failed"),
    "committed": ("plantpulse_store_committed_records_total", "spool records written to the store"),
    "skipped": ("plantpulse_store_skipped_records_total", "replayed records the store already held"),
    "rejected": ("plantpulse_store_rejected_records_total", "records the store refused for good"),
    "transactions": ("plantpulse_store_transactions_total", "store transactions that committed records"),
    "outages": ("plantpulse_store_outages_total", "times the store became unavailable"),
}
_CHANNEL_COUNTERS = {
    "sent": "messages delivered",
    "failed": "messages given up after their retries",
    "dropped": "messages given up unsent (no such contact; a full queue of notifications.urls)",
    "deferred": "messages that waited in the outbox because the channel's queue was full",
    "failed_attempts": "failed attempts, retried or not",
}


def _gauge(name: str, doc: str, value: float, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value), unit=unit)


def _counters(fields: Mapping[str, tuple[str, str]], snapshot: object) -> Iterator[Metric]:
    for attr, (name, doc) in fields.items():
        yield CounterMetricFamily(name, doc, value=float(getattr(snapshot, attr)))


def _labelled(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    labels: list[str],
    rows: Iterable[tuple[list[str], float]],
) -> Metric:
    m = family(name, doc, labels=labels)
    for values, value in rows:
        m.add_metric(values, float(value))
    return m


def _with_known(counts: Mapping[str, int], known: Iterable[str]) -> dict[str, int]:
    return {**dict.fromkeys(known, 0), **counts}


def _sources(v: Vitals) -> Iterator[Metric]:
    src = v.sources
    up = (([s.name], s.available is True) for s in src)
    yield _labelled(GaugeMetricFamily, "plantpulse_source_up", "1 available, 0 not (yet)", ["source"], up)
    for attr, (name, doc) in _SOURCE_COUNTERS.items():
        rows = (([s.name], getattr(s, attr)) for s in src)
        yield _labelled(CounterMetricFamily, name, doc, ["source"], rows)
    errors = (([s.name, c], n) for s in src for c, n in _with_known(s.errors, ERROR_CAUSES).items())
    doc = "errors by cause (malformed payloads included)"
    yield _labelled(CounterMetricFamily, "plantpulse_source_errors_total", doc, ["source", "cause"], errors)
    refused = (
        ([s.name, c], n) for s in src for c, n in _with_known(s.quarantined, QUARANTINE_CAUSES).items()
    )
    name, doc = "plantpulse_source_quarantined_samples_total", "samples accept: refused, by cause"
    yield _labelled(CounterMetricFamily, name, doc, ["source", "cause"], refused)
    stale = (([s.name], len(s.stale)) for s in src)
    doc = "tags the watchdog holds stale now"
    yield _labelled(GaugeMetricFamily, "plantpulse_source_stale_tags", doc, ["source"], stale)
    lags = (([name], (v.wall_ns - wm) / 1e9) for name, wm in sorted(v.watermarks.items()))
    name, doc = "plantpulse_source_watermark_lag_seconds", "wall time minus the source's watermark"
    yield _labelled(GaugeMetricFamily, name, doc, ["source"], lags)


def _pipeline(v: Vitals) -> Iterator[Metric]:
    yield _gauge("plantpulse_tags", "tags known to the pipeline", v.tags)
    yield _gauge("plantpulse_rules", "rules evaluated", v.rules)
    doc = "wall time minus the engine's watermark"
    lag = GaugeMetricFamily("plantpulse_watermark_lag_seconds", doc, unit="seconds")
    if v.watermark is not None:
        lag.add_metric([], (v.wall_ns - v.watermark) / 1e9)
    yield lag
    if (q := v.queue) is not None:
        yield _gauge("plantpulse_queue_samples", "samples between the input log and the engine", q.samples)
        yield _gauge("plantpulse_queue_capacity_samples", "stream.queue_size", q.capacity)
        doc = "times a collector waited for room (backpressure)"
        yield CounterMetricFamily("plantpulse_queue_backpressure_waits_total", doc, value=q.waits)
    if v.pipeline is not None:
        yield from _counters(_PIPELINE_COUNTERS, v.pipeline)
    if (e := v.engine) is not None:
        yield from _counters(_ENGINE_COUNTERS, e)
        yield _gauge("plantpulse_engine_streams", "rule-and-tag streams held", e.streams)
        raised = (([rule], n) for rule, n in sorted(e.raised.items()))
        yield _labelled(
            CounterMetricFamily, "plantpulse_alerts_raised_total", "alerts raised", ["rule"], raised
        )
        cleared = (([rule], n) for rule, n in sorted(e.cleared.items()))
        yield _labelled(
            CounterMetricFamily, "plantpulse_alerts_cleared_total", "alerts cleared", ["rule"], cleared
        )
    if (r := v.recovery) is not None:
        doc = "spool records the engine re-evaluated at start"
        yield CounterMetricFamily("plantpulse_spool_replayed_records_total", doc, value=r.records)
        yield _gauge("plantpulse_recovery_seconds", "how long that took", r.seconds, unit="seconds")


def _spool(v: Vitals) -> Iterator[Metric]:
    s = v.spool
    yield _gauge("plantpulse_store_up", "1 while the store takes writes", s.store_available)
    yield _gauge(
        "plantpulse_spool_backlog_records", "spooled records not yet in the store", s.pending_records
    )
    yield _gauge("plantpulse_spool_backlog_bytes", "their size", s.pending_bytes, unit="bytes")
    yield _gauge("plantpulse_spool_capacity_bytes", "store.spool.max_bytes", v.spool_max_bytes, unit="bytes")
    yield from _counters(_SPOOL_COUNTERS, s)
    if (h := s.write_seconds) is not None:
        buckets = [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in h.cumulative()]
        name, doc = "plantpulse_store_write_duration_seconds", "time the store took for one transaction"
        yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total, unit="seconds")


def _notifier(v: Vitals) -> Iterator[Metric]:
    channels: dict[str, dict[str, int]] = {}
    if (n := v.notifier) is not None:
        for ch, st in n.channels.items():
            channels[ch] = {
                "queued": st.queued,
                "sent": st.sent,
                "failed": st.failed,
                "dropped": st.dropped,
                "deferred": st.deferred,
                "failed_attempts": st.attempts_failed,
            }
    if (p := v.push) is not None:
        channels[URLS_CHANNEL] = {"queued": p.queued, **_with_known(p.counts, ("sent", "failed", "dropped"))}
    queued = (([ch], c["queued"]) for ch, c in channels.items())
    doc = "messages queued or being sent"
    yield _labelled(GaugeMetricFamily, "plantpulse_notifier_queued", doc, ["channel"], queued)
    for key, doc in _CHANNEL_COUNTERS.items():
        rows = (([ch], c[key]) for ch, c in channels.items() if key in c)
        yield _labelled(CounterMetricFamily, f"plantpulse_notifier_{key}_total", doc, ["channel"], rows)
    if n is not None:
        yield _gauge("plantpulse_escalations_pending", "alerts whose escalation is active", n.pending)
        outcomes = (([k], c) for k, c in _with_known(n.counts, ESCALATION_OUTCOMES).items())
        doc = "escalation loop outcomes: events dropped (inbox full), unrouted, quarantined, held, ..."
        yield _labelled(
            CounterMetricFamily, "plantpulse_escalation_outcomes_total", doc, ["outcome"], outcomes
        )
