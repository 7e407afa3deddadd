"""Collector kinds by config ``kind``: an explicit table, not discovery or import side effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plantpulse.collectors.base import PolledCollector, StreamingCollector
from plantpulse.config import OpcUaSource

Collector = PolledCollector | StreamingCollector


def _opcua(config: Any) -> Collector:
    from plantpulse.collectors.opcua import OpcUaCollector

    assert isinstance(config, OpcUaSource)
    return OpcUaCollector(config)


COLLECTORS: dict[str, Callable[[Any], Collector]] = {
    "opcua": _opcua,
}


def build_collector(config: Any) -> Collector:
    """The collector for one ``sources:`` entry (already validated, so the kind is known)."""
    return COLLECTORS[config.kind](config)
