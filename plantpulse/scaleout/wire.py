"""Messages on the topics. Samples travel as compact binary batches (the spool's codec), never as
one JSON message per sample; alert transitions as JSON, keyed by their deterministic id.

``samples`` message value (little-endian)::

    u8 route ('L' live, 'H' historical, 'M' marker, 'W' watermark only)
    i64 watermark (ns): the largest live timestamp or heartbeat the collector had seen when it
        sent this message; a partition's watermark is the largest it has heard
    body: ``encode_samples`` of the batch (empty for 'W')

``alerts`` message value: ``{"event": asdict(AlertEvent), "push": bool}`` (push is false for
transitions of historical samples: stored, never pushed).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from enum import Enum

from plantpulse.alerts import AlertEvent
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.spool import decode_samples, encode_samples

__all__ = [
    "AlertMessage",
    "Route",
    "SamplesMessage",
    "decode_alert",
    "decode_samples_message",
    "encode_alert",
    "encode_samples_message",
    "encode_watermark",
]

_HEAD = struct.Struct("<cq")


class Route(Enum):
    LIVE = b"L"
    HISTORICAL = b"H"
    MARKER = b"M"
    WATERMARK = b"W"


@dataclass(frozen=True, slots=True)
class SamplesMessage:
    route: Route
    watermark: int
    batch: SampleBatch | None  # None for a watermark-only message


def encode_samples_message(route: Route, watermark: int, batch: SampleBatch) -> bytes:
    return _HEAD.pack(route.value, watermark) + encode_samples(batch)


def encode_watermark(watermark: int) -> bytes:
    return _HEAD.pack(Route.WATERMARK.value, watermark)


def decode_samples_message(value: bytes, tags: TagRegistry) -> SamplesMessage:
    """Raises ValueError on a message this version cannot read."""
    if len(value) < _HEAD.size:
        raise ValueError(f"samples message of {len(value)} bytes is shorter than its header")
    code, watermark = _HEAD.unpack_from(value)
    route = Route(code)
    if route is Route.WATERMARK:
        return SamplesMessage(route, watermark, None)
    try:
        batch = decode_samples(value[_HEAD.size :], tags)
    except (struct.error, UnicodeDecodeError) as e:
        raise ValueError(f"samples message body cannot be decoded: {e}") from e
    return SamplesMessage(route, watermark, batch)


@dataclass(frozen=True, slots=True)
class AlertMessage:
    event: AlertEvent
    push: bool


def encode_alert(event: AlertEvent, push: bool) -> bytes:
    return json.dumps({"event": asdict(event), "push": push}, ensure_ascii=False).encode()


def decode_alert(value: bytes) -> AlertMessage:
    """Raises ValueError on a message this version cannot read."""
    try:
        doc = json.loads(value)
        return AlertMessage(AlertEvent.from_dict(doc["event"]), bool(doc["push"]))
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"alert message cannot be decoded: {e}") from e
