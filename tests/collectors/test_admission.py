"""Event time guarded: the runner admits a source's samples only within its accept window and
tag bound; the rest is quarantined (counted per cause, logged once, written to the sink's
quarantine) and never reaches the engine, the store or the watermark."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from collector_helpers import RecordingSink

from plantpulse.collectors.admission import Accept, Admission
from plantpulse.collectors.runner import CollectorRunner
from plantpulse.config import SpoolConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline
from plantpulse.stream.quarantine import QuarantineFile

S = 1_000_000_000
NOW = 1_796_000_000 * S  # the arrival clock of these tests
YEAR = 365 * 86_400 * S


def sample(ts: int, tag: str = "line1/a/temp", value: float = 1.0) -> Sample:
    return Sample(ts, tag, value)


def test_the_window_and_the_tag_bound() -> None:
    adm = Admission(Accept(ahead="5s", behind="60s", max_tags=3), configured=["line1/a/temp"])
    ok = [sample(NOW - 60 * S), sample(NOW + 5 * S, "line1/b/temp")]
    admitted, refused = adm.split(ok, NOW)
    assert admitted is ok and refused == {}  # the usual case: nothing copied
    batch = [
        sample(NOW + 5 * S + 1),  # just past ahead
        sample(NOW - 60 * S - 1),  # just past behind
        sample(0),  # 1970
        sample(NOW, "line1/c/temp"),  # tag 3 of 3
        sample(NOW, "line1/d/temp"),  # tag 4: over the bound
        sample(NOW + YEAR, "line1/e/temp"),  # ahead first: a refused sample takes no tag
        sample(NOW, "line1/a/temp"),  # configured: always
    ]
    admitted, refused = adm.split(batch, NOW)
    assert [s.tag for s in admitted] == ["line1/c/temp", "line1/a/temp"]
    assert {cause: [s.ts for s in out] for cause, out in refused.items()} == {
        "ahead": [NOW + 5 * S + 1, NOW + YEAR],
        "behind": [NOW - 60 * S - 1, 0],
        "tag-limit": [NOW],
    }
    assert adm.tags == 3


class Script:
    """A streaming collector delivering fixed chunks, then waiting."""

    name = "gw"
    address = "mqtt://gw:1883"

    def __init__(self, chunks: list[list[Sample]]) -> None:
        self.chunks = chunks
        self.delivered = asyncio.Event()

    async def run(self, sink: object) -> None:
        for chunk in self.chunks:
            await sink.put(chunk)  # type: ignore[attr-defined]
        self.delivered.set()
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


class QuarantiningSink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.quarantined: list[tuple[str, str, list[Sample]]] = []

    def quarantine(self, source: str, cause: str, samples: Sequence[Sample]) -> None:
        self.quarantined.append((source, cause, list(samples)))


async def test_the_runner_quarantines_counts_and_logs_once_per_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = QuarantiningSink()
    chunks = [
        [sample(NOW), sample(NOW + YEAR)],
        [sample(NOW + YEAR + 1), sample(5), sample(NOW + S)],
        [sample(NOW, f"wild/{i}/x") for i in range(4)],
    ]
    runner = CollectorRunner(Script(chunks), sink, accept=Accept(max_tags=3), wallclock=lambda: NOW)
    task = asyncio.create_task(runner.run())
    try:
        await sink.wait_for(lambda s: len(s.samples) == 4 and len(s.quarantined) == 4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [s.ts for s in sink.samples] == [NOW, NOW + S, NOW, NOW]
    assert [s.tag for s in sink.samples[2:]] == ["wild/0/x", "wild/1/x"]  # line1/a/temp was the first
    assert [(c, len(out)) for _, c, out in sink.quarantined] == [
        ("ahead", 1),
        ("ahead", 1),
        ("behind", 1),
        ("tag-limit", 2),
    ]
    st = runner.status()
    assert dict(st.quarantined) == {"ahead": 2, "behind": 1, "tag-limit": 2} and st.samples == 4
    logged = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 3  # once per cause
    assert (
        "line1/a/temp at 2027-11-30T00:53:20.000Z" in logged[0]
        and "8760h ahead of its arrival (accept.ahead 5m)" in logged[0]
    )


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[SpoolWriter]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    w = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool"))
    await w.start()
    yield w
    await w.stop()


async def test_a_clock_a_year_ahead_neither_fires_pending_rules_nor_reaches_the_store(
    writer: SpoolWriter, tmp_path: Path
) -> None:
    """The issue's case: one sample a year ahead fired every pending ``for`` at once."""
    tags = TagRegistry()
    rules = load_rules_text("rules:\n  - {id: hot, tag: line1/*/temp, above: 80, for: 3s, severity: high}\n")
    quarantine = QuarantineFile(tmp_path / "spool")
    p = Pipeline(Engine(rules, tags), tags, writer, quarantine=quarantine, clock=lambda: NOW)
    good = [sample(NOW - 2 * S, value=90.0)]  # pending, due 1 s from now
    bad = [sample(NOW + YEAR, "line1/b/temp", 20.0), sample(0, "line1/c/temp", 20.0)]
    script = Script([good, bad])
    runner = CollectorRunner(script, p.sink.bind("gw"), wallclock=lambda: NOW)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(script.delivered.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await p.step() == []  # nothing fired
    assert p.watermark == NOW - 2 * S and p.stats.samples == 1
    await writer.flush()
    latest = await writer.store.latest()
    assert sorted(latest) == ["line1/a/temp"]
    quarantine.close()
    lines = [json.loads(x) for x in (tmp_path / "spool" / "quarantine.jsonl").read_text("utf-8").splitlines()]
    assert [(q["source"], q["cause"], q["tag"], q["ts"]) for q in lines] == [
        ("gw", "ahead", "line1/b/temp", NOW + YEAR),
        ("gw", "behind", "line1/c/temp", 0),
    ]
    assert lines[1]["time"] == "1970-01-01T00:00:00.000Z"


def test_accept_is_on_every_source_kind() -> None:
    from plantpulse.config import PlantConfig

    accept = {"ahead": "30s", "behind": "1d", "max_tags": 500}
    plant = PlantConfig.model_validate(
        {
            "sources": [
                {"kind": "opcua", "name": "o", "endpoint": "opc.tcp://h:4840", "accept": accept,
                 "tags": [{"name": "a/b/c", "node": "ns=2;s=x"}]},
                {"kind": "modbus", "name": "m", "tcp": {"host": "h"}, "accept": accept,
                 "tags": [{"name": "a/b/d", "address": 0, "type": "uint16"}]},
                {"kind": "mqtt", "name": "q", "host": "h", "accept": accept,
                 "subscriptions": [{"topic": "t/+", "tag": "a/{1}/e", "value": "$.v"}]},
            ]
        }
    )  # fmt: skip
    assert {s.accept for s in plant.sources} == {Accept(ahead="30s", behind="1d", max_tags=500)}
