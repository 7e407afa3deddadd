"""Collector kinds by config ``kind``: an explicit table, not discovery or import side effects.

Each entry builds the collector for one validated ``sources:`` entry and says whether it is
polled (and how often); ``build_runner`` wraps it in the one runner that owns its life.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plantpulse.collectors.base import PolledCollector, Sink, StreamingCollector
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.timefmt import NS_PER_S

Collector = PolledCollector | StreamingCollector


@dataclass(frozen=True)
class Kind:
    build: Callable[[Any, Sink], Collector]
    polled: bool = False


def _opcua(config: Any, sink: Sink) -> Collector:
    from plantpulse.collectors.opcua import OpcUaCollector

    return OpcUaCollector(config)


def _modbus(config: Any, sink: Sink) -> Collector:
    from plantpulse.collectors.modbus import ModbusCollector

    # a failed request marks only its tags bad; report() counts it against the source
    return ModbusCollector(config, report=lambda error: sink.error(config.name, error))


def _mqtt(config: Any, sink: Sink) -> Collector:
    from plantpulse.collectors.mqtt import MqttCollector

    return MqttCollector(config)


KINDS: dict[str, Kind] = {
    "opcua": Kind(_opcua),
    "modbus": Kind(_modbus, polled=True),
    "mqtt": Kind(_mqtt),
}


def build_runner(config: Any, sink: Sink) -> CollectorRunner:
    """The runner for one ``sources:`` entry (already validated, so its kind is known)."""
    kind = KINDS[config.kind]
    return CollectorRunner(
        kind.build(config, sink),
        sink,
        interval=config.interval / NS_PER_S if kind.polled else None,
        timeout=config.timeout / NS_PER_S,
        tags=[t.name for t in config.tags],
    )
