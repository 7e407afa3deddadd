"""KPIs from stored samples, on SQLite and on PostgreSQL: ``Store.read_samples`` and the same
``kpi report``, ``kpi alarms`` and ``trace`` output as from the samples file."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.cli import main
from plantpulse.samplefile import read_samples
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store import Store, open_store
from plantpulse.timefmt import parse_ts

CASES = Path(__file__).parent / "cases"
S = 1_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    from tests.store.pg_helpers import create_database, drop_database

    dsn: str = request.getfixturevalue("pg_dsn")
    url = create_database(dsn, "test_kpi")
    try:
        yield url
    finally:
        drop_database(dsn, url)


async def _with_store(url: str, work) -> object:  # type: ignore[no-untyped-def]
    store: Store = open_store(url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def test_read_samples_in_time_order_with_the_held_value(store_url: str) -> None:
    src = TagRegistry(["a/x", "a/y", "b/z"])
    rows = [
        (10, 0, 1.0, 0),
        (20, 1, 5.0, 0),
        (30, 0, 2.0, 0),
        (30, 2, 7.0, 2),
        (45, 0, np.nan, 2),
        (60, 2, 8.0, 1),
    ]
    batch = SampleBatch.make(src, *(np.array([r[i] for r in rows]) * (S if i == 0 else 1) for i in range(4)))

    async def work(store: Store) -> tuple[SampleBatch, SampleBatch]:
        await store.write_samples(batch, "b1")
        reg = TagRegistry(["unrelated"])
        prior = await store.read_samples(["a/x", "b/z", "nowhere"], 25 * S, 60 * S, reg, prior=True)
        plain = await store.read_samples(["a/x", "b/z"], 25 * S, 60 * S, reg)
        return prior, plain

    prior, plain = asyncio.run(_with_store(store_url, work))  # type: ignore[misc]
    got = [(s.ts // S, s.tag, s.value, s.quality) for s in prior.samples()]
    assert got[0] == (10, "a/x", 1.0, Quality.GOOD)  # a/x held 1.0 at 25 s; b/z had no sample before
    assert got[1:3] == [(30, "a/x", 2.0, Quality.GOOD), (30, "b/z", 7.0, Quality.BAD)] or got[1:3] == [
        (30, "b/z", 7.0, Quality.BAD),
        (30, "a/x", 2.0, Quality.GOOD),
    ]
    assert got[3][:2] == (45, "a/x") and np.isnan(got[3][2]) and got[3][3] == Quality.BAD
    assert len(got) == 4  # 60 s is the exclusive end
    assert [s.ts // S for s in plain.samples()] == [30, 30, 45]
    assert prior.tags.name(0) == "unrelated"


def _store_case(case: str, url: str, tmp: Path) -> Path:
    """The golden case's plant on a store holding its samples (written in three batches)."""
    for f in (CASES / case).iterdir():
        shutil.copy(f, tmp / f.name)
    plant = tmp / "plant.yaml"
    plant.write_text(plant.read_text(encoding="utf-8") + f"store: {{url: '{url}'}}\n", encoding="utf-8")
    tags = TagRegistry()
    batch = SampleBatch.concat(tags, list(read_samples(tmp / "samples.csv", tags)))

    async def work(store: Store) -> None:
        for i, part in enumerate(np.array_split(np.arange(len(batch)), 3)):
            await store.write_samples(batch.take(part), f"b{i}")

    asyncio.run(_with_store(url, work))
    return plant


@pytest.mark.parametrize("case", ["counter_resets_wraps", "planned_breaks", "partial_coverage"])
def test_report_from_the_store_equals_the_file(
    case: str, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = _store_case(case, store_url, tmp_path)
    import yaml

    spec = yaml.safe_load((tmp_path / "case.yaml").read_text(encoding="utf-8"))
    args = ["kpi", "report", "-c", str(plant), "--from", spec["from"], "--to", spec["to"], "--by", spec["by"]]
    assert main([*args, "--format", "csv", "--data", str(tmp_path / "samples.csv")]) == 0
    from_file = capsys.readouterr().out
    assert main([*args, "--format", "csv"]) == 0
    from_store = capsys.readouterr().out
    assert from_store == from_file
    assert len(from_store.splitlines()) > 2


def test_alarms_and_trace_from_the_store(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = _store_case("planned_breaks", store_url, tmp_path)
    kpis = tmp_path / "kpis.yaml"
    kpis.write_text("parameters: [line1/*/current_sp]\n" + kpis.read_text(encoding="utf-8"), encoding="utf-8")
    t0 = parse_ts("2026-01-05T08:00:00Z")
    events = [
        AlertEvent("raised", "weld-current", "line1/w1/current", "high", t0, t0, 200.0, "hot"),
        AlertEvent("cleared", "weld-current", "line1/w1/current", "high", t0, t0 + 90 * S, 200.0, "hot"),
        AlertEvent(
            "raised", "weld-current", "line1/w1/current", "high", t0 + 3600 * S, t0 + 3600 * S, 210.0, "hot"
        ),
    ]
    tags = TagRegistry()
    sp = SampleBatch.make(
        tags,
        [t0 - 60 * S, t0 + 600 * S, t0 + 900 * S],
        [tags.id("line1/w1/current_sp")] * 3,
        [180.0, 180.0, 195.0],
    )

    async def work(store: Store) -> None:
        await store.write_alert_events(events, "alerts-1")
        await store.acknowledge(events[0].alert_id, "Ann", t0 + 600 * S, "查看")
        await store.write_samples(sp, "sp")

    asyncio.run(_with_store(store_url, work))
    span = ["--from", "2026-01-05 06:00", "--to", "2026-01-05 22:00"]
    assert main(["kpi", "alarms", "-c", str(plant), *span, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["position"], r["window"], r["alarms"], r["crew"]) for r in rows] == [
        ("line1", "all", "2", ""),
        ("line1", "2026-01-05 early", "2", "A"),
        ("line1", "2026-01-05 late", "0", "B"),
    ]
    assert rows[0]["ack_median_s"] == "600.0" and rows[0]["unack_cleared"] == "1"  # cleared, then acked
    assert (
        main(
            [
                "trace",
                "-c",
                str(plant),
                "--asset",
                "line1",
                "--from",
                "2026-01-05 06:00",
                "--to",
                "2026-01-05 22:00",
                "--format",
                "jsonl",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert '"old": 180.0, "new": 195.0' in out[0] and '"operator": ["Ann"]' in out[0]
