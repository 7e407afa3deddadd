"""Sample files: every timestamp form of SPEC §3, quality, Parquet, and a CSV round trip."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plantpulse.samplefile import SampleFileError, read_samples, write_samples_csv
from plantpulse.samples import Quality, SampleBatch, TagRegistry


def _read(path: Path) -> SampleBatch:
    tags = TagRegistry()
    return SampleBatch.concat(tags, list(read_samples(path, tags)))


def test_csv_timestamp_forms_and_quality(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(
        "ts,tag,value,quality\n"
        "2026-01-01T08:00:00.123Z,焊机/电流,1.5,good\n"
        "2026-01-01T16:00:00.5+08:00,焊机/电流,,bad\n"
        "2026-01-01T08:00:01,焊机/电流,2,UNCERTAIN\n",
        encoding="utf-8",
    )
    b = _read(p)
    assert b.ts.tolist() == [1767254400123000000, 1767254400500000000, 1767254401000000000]
    assert [s.tag for s in b.samples()] == ["焊机/电流"] * 3
    assert b.quality.tolist() == [Quality.GOOD, Quality.BAD, Quality.UNCERTAIN]
    assert math.isnan(b.value[1])


def test_epoch_seconds_are_exact_to_the_nanosecond(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("ts,tag,value\n1767254400.123,a/x,1\n1767254401.000000001,b/x,nan\n", encoding="utf-8")
    b = _read(p)
    assert b.ts.tolist() == [1767254400123000000, 1767254401000000001]
    assert b.quality.tolist() == [Quality.GOOD, Quality.BAD]  # NaN counts as bad


def test_parquet_timestamp_column(tmp_path: Path) -> None:
    p = tmp_path / "s.parquet"
    table = pa.table(
        {
            "ts": pa.array([1767254400123000000], type=pa.timestamp("ns", tz="UTC")),
            "tag": ["a/x"],
            "value": [3.0],
        }
    )
    pq.write_table(table, p)
    b = _read(p)
    assert (b.ts.tolist(), b.value.tolist()) == ([1767254400123000000], [3.0])


def test_bad_header_and_quality_are_errors(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("time,tag,value\n1,a,1\n", encoding="utf-8")
    with pytest.raises(SampleFileError, match="header must be ts,tag,value"):
        _read(p)
    p.write_text("ts,tag,value,quality\n1,a,1,great\n", encoding="utf-8")
    with pytest.raises(SampleFileError, match="quality must be"):
        _read(p)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    tags = TagRegistry()
    src = SampleBatch.make(
        tags, [1_000_000, 2_000_000], [tags.id("a/x"), tags.id("温度")], [1.25, 2.0], [0, 2]
    )
    p = tmp_path / "out.csv"
    assert write_samples_csv(p, [src]) == 2
    back = _read(p)
    assert back.samples() == src.samples()
