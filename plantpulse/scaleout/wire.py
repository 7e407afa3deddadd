"""Messages on the topics. Samples travel as compact binary batches, never as one JSON message
per sample; alert transitions as JSON, keyed by their deterministic id.

``samples`` message value (little-endian)::

    u8 route ('L' live, 'H' historical, 'M' marker, 'W' watermark only; then nothing follows)
    i64 watermark (ns): the largest live timestamp or heartbeat the collector had seen when it
        sent this message; a partition's watermark is the largest it has heard
    u32 table length, table: the batch's tag names, UTF-8, NUL-separated, zlib-compressed
    u32 n, u8 flags, then the columns:
        ts       flags & 4: i64 base + u32 offset[n]; else i64[n]
        tag      index into the table; flags & 1: omitted, row i is name i (each tag once)
        value    f64[n]
        quality  flags & 2: omitted, all good; else u8[n]

A collector sends the same tags in the same order every cycle, so the table's bytes repeat:
writers compress a table once and readers resolve it to registry ids once (both keep the
tables they have seen), and a typical sample costs 12 bytes plus its share of the table.
The spool's record body is the uncompressed, one-name-at-a-time variant of this layout.

``alerts`` message value: ``{"event": asdict(AlertEvent), "push": bool}`` (push is false for
transitions of historical samples: stored, never pushed).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from plantpulse.alerts import AlertEvent
from plantpulse.samples import SampleBatch, TagRegistry

__all__ = [
    "AlertMessage",
    "Route",
    "SamplesMessage",
    "SamplesReader",
    "SamplesWriter",
    "decode_alert",
    "encode_alert",
    "encode_samples_message",
    "encode_watermark",
]

_HEAD = struct.Struct("<cq")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_COUNT = struct.Struct("<IB")
_ROWS_ARE_NAMES, _ALL_GOOD, _TS_OFFSETS = 1, 2, 4
_TABLES_KEPT = 256  # name tables remembered per writer and per reader


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


class SamplesWriter:
    """Encodes samples messages, remembering the compressed name tables it has built."""

    def __init__(self) -> None:
        self._tables: dict[bytes, bytes] = {}  # tag column of the registry -> compressed table

    def write(self, route: Route, watermark: int, batch: SampleBatch) -> bytes:
        n = len(batch)
        used, local = np.unique(batch.tag, return_inverse=True)
        flags = 0
        rows_are_names = len(used) == n  # each tag once: the table follows the rows
        if rows_are_names:
            used, flags = batch.tag, flags | _ROWS_ARE_NAMES
        table = self._table(batch.tags, used)
        quality = batch.quality
        if not quality.any():
            flags |= _ALL_GOOD
        ts = batch.ts
        base = int(ts.min()) if n else 0
        if n and int(ts.max()) - base < 1 << 32:
            flags |= _TS_OFFSETS
        parts = [_HEAD.pack(route.value, watermark), _U32.pack(len(table)), table, _COUNT.pack(n, flags)]
        if flags & _TS_OFFSETS:
            parts += [_I64.pack(base), (ts - base).astype("<u4").tobytes()]
        else:
            parts.append(ts.astype("<i8").tobytes())
        if not rows_are_names:
            parts.append(local.astype("<i4").tobytes())
        parts.append(batch.value.astype("<f8").tobytes())
        if not flags & _ALL_GOOD:
            parts.append(quality.astype(np.uint8).tobytes())
        return b"".join(parts)

    def _table(self, tags: TagRegistry, ids: npt.NDArray[np.int32]) -> bytes:
        key = ids.astype(np.int32).tobytes()
        table = self._tables.get(key)
        if table is None:
            if len(self._tables) >= _TABLES_KEPT:
                self._tables.clear()
            names = "\0".join(tags.name(int(i)) for i in ids).encode()
            table = self._tables[key] = zlib.compress(names, 1)
        return table


def encode_samples_message(route: Route, watermark: int, batch: SampleBatch) -> bytes:
    """One message without a writer's memory (tests, tools)."""
    return SamplesWriter().write(route, watermark, batch)


def encode_watermark(watermark: int) -> bytes:
    return _HEAD.pack(Route.WATERMARK.value, watermark)


class SamplesReader:
    """Decodes samples messages into one registry, remembering the ids of name tables."""

    def __init__(self, tags: TagRegistry) -> None:
        self.tags = tags
        self._ids: dict[bytes, npt.NDArray[np.int32]] = {}

    def read(self, value: bytes) -> SamplesMessage:
        """Raises ValueError on a message this version cannot read."""
        try:
            code, watermark = _HEAD.unpack_from(value)
            route = Route(code)
            if route is Route.WATERMARK:
                return SamplesMessage(route, watermark, None)
            pos = _HEAD.size
            (size,) = _U32.unpack_from(value, pos)
            ids = self._names(value[pos + 4 : pos + 4 + size])
            pos += 4 + size
            n, flags = _COUNT.unpack_from(value, pos)
            pos += _COUNT.size
            offsets = bool(flags & _TS_OFFSETS)
            row = (
                8
                + (4 if offsets else 8)
                + (0 if flags & _ROWS_ARE_NAMES else 4)
                + (0 if flags & _ALL_GOOD else 1)
            )
            want = pos + n * row + (8 if offsets else 0)
            if len(value) != want:
                raise ValueError(f"samples message is {len(value)} bytes, its header says {want}")
            if flags & _TS_OFFSETS:
                (base,) = _I64.unpack_from(value, pos)
                ts = np.frombuffer(value, "<u4", n, pos + 8).astype(np.int64) + base
                pos += 8 + 4 * n
            else:
                ts = np.frombuffer(value, "<i8", n, pos).astype(np.int64)
                pos += 8 * n
            if flags & _ROWS_ARE_NAMES:
                if len(ids) != n:
                    raise ValueError("samples message has a table of another size than its rows")
                tag = ids
            else:
                local = np.frombuffer(value, "<i4", n, pos)
                pos += 4 * n
                if n and (int(local.min()) < 0 or int(local.max()) >= len(ids)):
                    raise ValueError("samples message refers to a tag its name table does not hold")
                tag = ids[local]
            val = np.frombuffer(value, "<f8", n, pos).astype(np.float64)
            pos += 8 * n
            if flags & _ALL_GOOD:
                quality = np.zeros(n, dtype=np.uint8)
            else:
                quality = np.frombuffer(value, np.uint8, n, pos).copy()
        except struct.error as e:
            raise ValueError(f"samples message cannot be decoded: {e}") from e
        return SamplesMessage(route, watermark, SampleBatch(ts, tag, val, quality, self.tags))

    def _names(self, table: bytes) -> npt.NDArray[np.int32]:
        ids = self._ids.get(table)
        if ids is None:
            if len(self._ids) >= _TABLES_KEPT:
                self._ids.clear()
            try:
                raw = zlib.decompress(table)
                names = raw.decode().split("\0") if raw else []
            except (zlib.error, UnicodeDecodeError) as e:
                raise ValueError(f"samples message name table cannot be read: {e}") from e
            ids = self._ids[table] = self.tags.ids(names) if names else np.empty(0, np.int32)
        return ids


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
