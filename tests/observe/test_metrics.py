"""The metrics collector over one full Vitals read: every family, with the values it read."""

from __future__ import annotations

import os
import shutil
import subprocess
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plantpulse.collectors.runner import SourceStatus
from plantpulse.notifier.channels import ChannelStats
from plantpulse.notifier.escalator import NotifierStats
from plantpulse.observe.config import ReadyConfig
from plantpulse.observe.histogram import STORE_WRITE_BUCKETS, Histogram
from plantpulse.observe.metrics import PlantCollector
from plantpulse.observe.vitals import PushVitals, QueueVitals, Vitals
from plantpulse.rules.engine import EngineStats
from plantpulse.store.spool import SpoolStats
from plantpulse.stream.pipeline import PipelineStats, Recovery

S = 10**9
NOW = 1_796_083_200 * S


def full_vitals() -> Vitals:
    latency = Histogram(STORE_WRITE_BUCKETS)
    for seconds in (0.002, 0.002, 0.3):
        latency.observe(seconds)
    spool = SpoolStats(
        store_available=True, pending_records=3, pending_bytes=1200, spooled=50, committed=47, skipped=1,
        dropped_full=0, rejected=0, outages=1, last_error=None, fsyncs=20, transactions=12,
        write_seconds=latency.snapshot(),
    )  # fmt: skip
    press = SourceStatus(
        "press", "opc.tcp://press:4840", True, 10.0, None, samples=900, bad_samples=4, heartbeats=30,
        reconnects=5, errors=MappingProxyType({"unavailable": 5}), stale=("line1/press/force",),
        quarantined=MappingProxyType({"ahead": 2}), reconnected=1,
    )  # fmt: skip
    feed = SourceStatus("feed", "mqtt://broker:1883", None, None, None, 0, 0, 0, 0)
    wecom = ChannelStats(queued=2, sent=7, failed=1, dropped=0, deferred=3, attempts_failed=4)
    return Vitals(
        phase="running", wall_ns=NOW, monotonic=100.0, spool=spool, spool_max_bytes=1 << 30,
        sources=(press, feed), pipeline=PipelineStats(batches=9, samples=900),
        queue=QueueVitals(5, 100_000, 2),
        engine=EngineStats(samples=900, late_dropped=3, streams=12, raised={"hot": 2}, cleared={"hot": 1}),
        watermark=NOW - 2 * S, watermarks=MappingProxyType({"press": NOW - 2 * S}),
        recovery=Recovery(None, 40, 400, 0, 0, 0.5),
        notifier=NotifierStats(1, {"unrouted": 2}, {"wecom": wecom}),
        push=PushVitals(0, MappingProxyType({"sent": 3})), tags=20, rules=2,
    )  # fmt: skip


class Fixed:
    """Stands in for ``parts.Observed`` (our own two-member interface): one fixed read."""

    def __init__(self, read: Vitals) -> None:
        self.read, self.ready = read, ReadyConfig()

    def vitals(self) -> Vitals:
        return self.read


def exposition(v: Vitals) -> str:
    registry = CollectorRegistry()
    registry.register(PlantCollector(Fixed(v)))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_every_snapshot_is_exported_with_its_labels() -> None:
    m = samples(exposition(full_vitals()))

    def at(name: str, **labels: str) -> float | None:
        return m.get((name, frozenset(labels.items())))

    assert at("plantpulse_source_up", source="press") == 1 and at("plantpulse_source_up", source="feed") == 0
    assert at("plantpulse_source_samples_total", source="press") == 900
    assert at("plantpulse_source_reconnects_total", source="press") == 1
    assert at("plantpulse_source_reconnect_attempts_total", source="press") == 5
    assert at("plantpulse_source_errors_total", source="press", cause="unavailable") == 5
    # known causes exist from the start, so increase() sees the first one
    assert at("plantpulse_source_errors_total", source="feed", cause="malformed") == 0
    assert at("plantpulse_source_quarantined_samples_total", source="press", cause="ahead") == 2
    assert at("plantpulse_source_quarantined_samples_total", source="press", cause="tag-limit") == 0
    assert at("plantpulse_source_stale_tags", source="press") == 1
    assert at("plantpulse_source_watermark_lag_seconds", source="press") == 2.0
    assert at("plantpulse_watermark_lag_seconds") == 2.0
    assert at("plantpulse_queue_samples") == 5 and at("plantpulse_queue_backpressure_waits_total") == 2
    assert at("plantpulse_engine_late_samples_dropped_total") == 3 and at("plantpulse_engine_streams") == 12
    assert at("plantpulse_alerts_raised_total", rule="hot") == 2
    assert at("plantpulse_alerts_cleared_total", rule="hot") == 1
    assert at("plantpulse_spool_backlog_records") == 3 and at("plantpulse_spool_backlog_bytes") == 1200
    assert at("plantpulse_store_skipped_records_total") == 1 and at("plantpulse_store_outages_total") == 1
    assert at("plantpulse_spool_replayed_records_total") == 40
    assert at("plantpulse_store_write_duration_seconds_bucket", le="0.0025") == 2
    assert at("plantpulse_store_write_duration_seconds_bucket", le="+Inf") == 3
    assert at("plantpulse_store_write_duration_seconds_count") == 3
    assert at("plantpulse_notifier_queued", channel="wecom") == 2
    assert at("plantpulse_notifier_failed_attempts_total", channel="wecom") == 4
    assert at("plantpulse_notifier_sent_total", channel="notifications.urls") == 3
    assert at("plantpulse_notifier_failed_total", channel="notifications.urls") == 0
    assert at("plantpulse_notifier_deferred_total", channel="notifications.urls") is None  # not a thing there
    assert at("plantpulse_escalations_pending") == 1
    assert at("plantpulse_escalation_outcomes_total", outcome="unrouted") == 2
    assert at("plantpulse_escalation_outcomes_total", outcome="dropped_events") == 0
    assert at("plantpulse_ready") == 0  # the source "feed" has not connected yet


def test_before_the_pipeline_runs_only_what_exists_is_exported() -> None:
    v = full_vitals()
    starting = Vitals(phase="starting", wall_ns=NOW, monotonic=0.0, spool=v.spool, spool_max_bytes=1 << 30)
    m = samples(exposition(starting))
    names = {name for name, _ in m}
    assert "plantpulse_store_up" in names and "plantpulse_engine_samples_total" not in names
    assert "plantpulse_watermark_lag_seconds" not in names  # no watermark yet: no sample, not a 0


@pytest.mark.skipif(
    not (os.environ.get("PROMTOOL") or shutil.which("promtool")), reason="promtool is not installed"
)
def test_promtool_finds_nothing_to_lint() -> None:
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool") or "promtool"
    lint = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition(full_vitals()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
