"""What a spool record holds: its kinds and the encodings of their bodies (pure, no I/O).

Tag names travel with every batch of samples (registry ids are process-local, and a replay
may run in another process). An input record is one chunk a collector handed over, or a
heartbeat: u8 route, i64 watermark contribution, u16 + source name, then a samples body (none
for a heartbeat). Alert and journal records are JSON.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import IntEnum

import numpy as np

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.samples import SampleBatch, TagRegistry

__all__ = [
    "KIND_ALERTS",
    "KIND_INPUT",
    "KIND_JOURNAL",
    "KIND_SAMPLES",
    "InputRecord",
    "Route",
    "decode_alerts",
    "decode_input",
    "decode_journal",
    "decode_samples",
    "encode_alerts",
    "encode_input",
    "encode_journal",
    "encode_samples",
]

KIND_SAMPLES, KIND_ALERTS, KIND_JOURNAL, KIND_INPUT = 1, 2, 3, 4
"""Samples for the store only; alert events; journal entries; the pipeline's input."""

_INPUT_HEAD = struct.Struct("<BqH")
NO_WATERMARK = -(1 << 63)


class Route(IntEnum):
    """What an input record is for: live samples go to the engine, the store and pushes;
    historical ones (replayed from a device buffer) to the engine and the store, never to live
    pushes; markers (watchdog staleness, reconnect gaps) only to the store and the board;
    heartbeats only advance the watermark."""

    LIVE = 0
    HISTORICAL = 1
    MARKER = 2
    HEARTBEAT = 3


def encode_samples(batch: SampleBatch) -> bytes:
    """Tag names travel with the batch: registry ids are process-local and the replay may run
    in another process. Only the names the batch uses are written."""
    reg = batch.tags
    # by the batch's own tags, never the whole registry: a chunk of 5 samples among 100,000 tags
    used, local = np.unique(batch.tag, return_inverse=True)
    names = [reg.name(int(i)).encode() for i in used]
    parts = [struct.pack("<I", len(names))]
    for name in names:
        parts += [struct.pack("<H", len(name)), name]
    parts += [
        struct.pack("<I", len(batch)),
        batch.ts.astype("<i8").tobytes(),
        local.reshape(-1).astype("<i4").tobytes(),
        batch.value.astype("<f8").tobytes(),
        batch.quality.astype(np.uint8).tobytes(),
    ]
    return b"".join(parts)


def decode_samples(body: bytes, tags: TagRegistry) -> SampleBatch:
    (ntags,) = struct.unpack_from("<I", body, 0)
    pos, names = 4, []
    for _ in range(ntags):
        (ln,) = struct.unpack_from("<H", body, pos)
        names.append(body[pos + 2 : pos + 2 + ln].decode())
        pos += 2 + ln
    (n,) = struct.unpack_from("<I", body, pos)
    pos += 4
    ts = np.frombuffer(body, "<i8", n, pos).astype(np.int64)
    local = np.frombuffer(body, "<i4", n, pos + 8 * n)
    value = np.frombuffer(body, "<f8", n, pos + 12 * n).astype(np.float64)
    quality = np.frombuffer(body, np.uint8, n, pos + 20 * n).copy()
    ids = tags.ids(names) if names else np.empty(0, np.int32)
    return SampleBatch(ts, ids[local] if n else np.empty(0, np.int32), value, quality, tags)


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One chunk a collector handed over (or a heartbeat), as the input log keeps it."""

    route: Route
    source: str
    watermark: int | None  # the chunk's contribution to its source's watermark
    batch: SampleBatch | None  # None for a heartbeat


def encode_input(route: Route, source: str, watermark: int | None, batch: SampleBatch | None) -> bytes:
    name = source.encode()[:0xFFFF]
    head = _INPUT_HEAD.pack(int(route), NO_WATERMARK if watermark is None else watermark, len(name))
    return head + name + (encode_samples(batch) if batch is not None else b"")


def decode_input(body: bytes, tags: TagRegistry) -> InputRecord:
    route, wm, ln = _INPUT_HEAD.unpack_from(body, 0)
    pos = _INPUT_HEAD.size + ln
    source = body[_INPUT_HEAD.size : pos].decode()
    batch = decode_samples(body[pos:], tags) if len(body) > pos else None
    return InputRecord(Route(route), source, None if wm == NO_WATERMARK else wm, batch)


def encode_alerts(events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]] | None) -> bytes:
    return json.dumps({"events": [asdict(e) for e in events], "on_shift": on_shift}).encode()


def decode_alerts(body: bytes) -> tuple[list[AlertEvent], dict[str, dict[str, list[str]]] | None]:
    doc = json.loads(body)
    return [AlertEvent.from_dict(e) for e in doc["events"]], doc["on_shift"]


def encode_journal(entries: Sequence[JournalEntry]) -> bytes:
    return json.dumps([asdict(e) for e in entries]).encode()


def decode_journal(body: bytes) -> list[JournalEntry]:
    return [JournalEntry(**e) for e in json.loads(body)]
