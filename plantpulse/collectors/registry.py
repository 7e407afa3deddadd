"""Collector kinds by config ``kind``: an explicit table, not discovery or import side effects.

Each entry builds the collector for one validated ``sources:`` entry (handed the runner's
counting sink, so whatever it delivers outside ``run`` is counted too), says whether it is
polled, and says which watchdog interval applies to which tag; ``build_runner`` wraps it in
the one runner that owns its life.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plantpulse.collectors.base import PolledCollector, QualitySink, Sink, StreamingCollector
from plantpulse.collectors.quality import TagIntervals
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.timefmt import NS_PER_S

Collector = PolledCollector | StreamingCollector


@dataclass(frozen=True)
class Kind:
    build: Callable[[Any, QualitySink], Collector]
    polled: bool = False
    stale_after: Callable[[Any], TagIntervals] | None = None


def _opcua(config: Any, sink: QualitySink) -> Collector:
    from plantpulse.collectors.opcua import OpcUaCollector

    return OpcUaCollector(config)


def _modbus(config: Any, sink: QualitySink) -> Collector:
    from plantpulse.collectors.modbus import ModbusCollector

    # a failed request marks only its tags bad; report() counts it against the source
    return ModbusCollector(config, report=lambda error: sink.error(config.name, error))


def _mqtt(config: Any, sink: QualitySink) -> Collector:
    from plantpulse.collectors.mqtt import MqttCollector

    # replays (Sparkplug is_historical, JSON older than the tag's newest live sample) are
    # evaluated and stored by the pipeline but never pushed live
    return MqttCollector(config, historical=sink.put_historical)


def _per_tag(config: Any) -> TagIntervals:
    """``stale_after`` per configured tag, the source's as the default (OPC UA, Modbus)."""
    exact = {t.name: t.stale_after for t in config.tags if t.stale_after is not None}
    return TagIntervals(exact, default=config.stale_after)


def _per_subscription(config: Any) -> TagIntervals:
    """MQTT tags appear with their topics: each subscription's template becomes a pattern,
    first match wins (as for decoding); Sparkplug uses the source's ``stale_after``."""
    default = config.stale_after
    patterns = [
        (pattern, default if s.stale_after is None else s.stale_after)
        for s in config.subscriptions
        for pattern in s.tag_patterns()
    ]
    return TagIntervals(patterns=patterns, default=default)


KINDS: dict[str, Kind] = {
    "opcua": Kind(_opcua, stale_after=_per_tag),
    "modbus": Kind(_modbus, polled=True, stale_after=_per_tag),
    "mqtt": Kind(_mqtt, stale_after=_per_subscription),
}


def build_runner(config: Any, sink: Sink) -> CollectorRunner:
    """The runner for one ``sources:`` entry (already validated, so its kind is known)."""
    kind = KINDS[config.kind]
    return CollectorRunner.build(
        lambda counting: kind.build(config, counting),
        sink,
        interval=config.interval / NS_PER_S if kind.polled else None,
        timeout=config.timeout / NS_PER_S,
        tags=[t.name for t in config.tags],
        stale_after=kind.stale_after(config) if kind.stale_after is not None else None,
        accept=config.accept,
    )
