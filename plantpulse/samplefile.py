"""Sample interchange files (SPEC §3): CSV ``ts,tag,value[,quality]`` and Parquet.

Reading is columnar end to end with pyarrow (streaming CSV reader, Parquet row groups):
tags arrive dictionary-encoded, so interning costs one registry lookup per distinct tag per
chunk, and timestamps are converted per column, never per row. ``ts`` may be ISO-8601 with an
offset or ``Z`` (naive means UTC), epoch seconds as a decimal (read exactly, to the
nanosecond), or, in Parquet, a timestamp column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.timefmt import iso_ms, parse_ts

__all__ = ["SampleFileError", "SampleReader", "read_samples", "write_samples_csv"]

CHUNK_BYTES = 8 << 20
_DICT = pa.dictionary(pa.int32(), pa.string())
_QUALITY = {q.name.lower(): int(q) for q in Quality} | {"": 0}


class SampleFileError(ValueError):
    """The file is not a valid sample file; the message names the file and the problem."""


class SampleReader:
    """Iterate a sample file as SampleBatch chunks; ``progress`` is the fraction read so far."""

    def __init__(self, path: str | Path, tags: TagRegistry, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.tags = tags
        self.chunk_bytes = chunk_bytes
        self.size = os.path.getsize(self.path)
        self.rows = 0
        self._fh: IO[bytes] | None = None
        self._done = 0.0

    @property
    def parquet(self) -> bool:
        return self.path.suffix.lower() in (".parquet", ".pq")

    @property
    def progress(self) -> float:
        if self._fh is not None and self.size:
            try:
                return min(1.0, self._fh.tell() / self.size)
            except (OSError, ValueError):
                return self._done
        return self._done

    def __iter__(self) -> Iterator[SampleBatch]:
        try:
            yield from (self._parquet() if self.parquet else self._csv())
        except pa.ArrowInvalid as e:
            raise SampleFileError(f"{self.path}: {e}") from None
        self._done = 1.0

    def _csv(self) -> Iterator[SampleBatch]:
        with open(self.path, "rb") as fh:
            self._fh = fh
            head = fh.readline().decode("utf-8-sig").strip()
            fh.seek(0)
            names = [h.strip() for h in next(csv.reader([head]), [])]
            _check_header(self.path, names)
            types: dict[str, pa.DataType] = {"ts": pa.string(), "tag": _DICT, "value": pa.float64()}
            if "quality" in names:
                types["quality"] = _DICT
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(block_size=self.chunk_bytes),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
            for rb in reader:
                if rb.num_rows:
                    yield self._batch(rb)
            self._fh = None

    def _parquet(self) -> Iterator[SampleBatch]:
        f = pq.ParquetFile(self.path)
        _check_header(self.path, f.schema_arrow.names)
        total = max(f.metadata.num_rows, 1)
        for rb in f.iter_batches(batch_size=1 << 20):
            if rb.num_rows:
                yield self._batch(rb)
                self._done = self.rows / total

    def _batch(self, rb: pa.RecordBatch) -> SampleBatch:
        cols = dict(zip(rb.schema.names, rb.columns, strict=True))
        ts = _ts_ns(cols["ts"], self.path, self.rows)
        tag_ids = self._intern(cols["tag"])
        value = cols["value"]
        if value.type != pa.float64():
            value = pc.cast(value, pa.float64())
        vals = value.to_numpy(zero_copy_only=False)
        if value.null_count:
            vals = np.where(np.asarray(value.is_null()), np.nan, vals)
        quality = _quality(cols["quality"], self.path) if "quality" in cols else None
        self.rows += rb.num_rows
        return SampleBatch.make(self.tags, ts, tag_ids, vals, quality)

    def _intern(self, col: pa.Array) -> Any:
        if not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col)
        names = col.dictionary.to_pylist()
        if col.null_count or any(not n for n in names):
            raise SampleFileError(f"{self.path}: empty tag name near row {self.rows + 2}")
        ids = np.array([self.tags.id(n.strip()) for n in names], dtype=np.int32)
        return ids[col.indices.to_numpy(zero_copy_only=False)]


def _check_header(path: Path, names: list[str]) -> None:
    need = {"ts", "tag", "value"}
    if not need <= set(names) or not set(names) <= need | {"quality"}:
        raise SampleFileError(f"{path}: header must be ts,tag,value[,quality], got {','.join(names)}")


def _ts_ns(col: pa.Array, path: Path, row0: int) -> Any:
    """Timestamps to int64 ns, choosing the cheapest exact conversion for the column."""
    t = col.type
    if pa.types.is_timestamp(t):
        return pc.cast(col, pa.timestamp("ns", tz=t.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.round(col.to_numpy(zero_copy_only=False).astype(np.float64) * 1e9).astype(np.int64)
    s = pc.utf8_trim_whitespace(col)
    if pc.all(pc.match_substring_regex(s, r"^\d+(\.\d{1,9})?$")).as_py():
        parts = pc.split_pattern(s, ".", max_splits=1)
        whole = pc.cast(pc.list_element(parts, 0), pa.int64()).to_numpy(zero_copy_only=False)
        digits = pc.if_else(pc.match_substring(s, "."), pc.replace_substring_regex(s, r"^\d+\.", ""), "0")
        nanos = pc.cast(pc.utf8_slice_codeunits(pc.utf8_rpad(digits, 9, "0"), 0, 9), pa.int64())
        return whole * 1_000_000_000 + nanos.to_numpy(zero_copy_only=False)
    for typ in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return pc.cast(s, typ).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    out = np.empty(len(s), dtype=np.int64)
    for i, text in enumerate(s.to_pylist()):
        try:
            out[i] = parse_ts(text)
        except (ValueError, TypeError):
            raise SampleFileError(f"{path}: row {row0 + i + 2}: invalid timestamp {text!r}") from None
    return out


def _quality(col: pa.Array, path: Path) -> Any:
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(pc.cast(col, pa.string()))
    codes = []
    for name in col.dictionary.to_pylist():
        key = (name or "").strip().lower()
        if key not in _QUALITY:
            raise SampleFileError(f"{path}: quality must be good, uncertain or bad, not {name!r}")
        codes.append(_QUALITY[key])
    lut = np.array(codes or [0], dtype=np.uint8)
    idx = col.indices.fill_null(0) if col.null_count else col.indices
    return lut[idx.to_numpy(zero_copy_only=False)]


def read_samples(path: str | Path, tags: TagRegistry) -> Iterator[SampleBatch]:
    """Every sample of a CSV or Parquet file, in file order, as batches."""
    return iter(SampleReader(path, tags))


def write_samples_csv(path: str | Path, batches: Iterable[SampleBatch]) -> int:
    """Write batches as CSV with ISO-8601 UTC millisecond timestamps; returns rows written.
    (Sub-millisecond precision is dropped: the interchange format guarantees milliseconds.)"""
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "tag", "value", "quality"])
        for b in batches:
            for t, g, v, q in zip(
                b.ts.tolist(), b.tag.tolist(), b.value.tolist(), b.quality.tolist(), strict=True
            ):
                w.writerow([iso_ms(t), b.tags.name(g), repr(v), Quality(q).name.lower()])
                n += 1
    return n
