"""The sink's exactly-once rules on a real SQLite store, one message at a time (no broker):
a samples message replayed is skipped by its batch id, a transition repeated after a worker
loss is dropped by its alert id and not pushed again, malformed messages are counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.scaleout.sink import StoreSink
from plantpulse.scaleout.wire import Route, encode_alert, encode_samples_message, encode_watermark
from plantpulse.store.sqlite import SQLiteStore

TAG = "line1/weld02/current"


def event(kind: str, at: int) -> AlertEvent:
    return AlertEvent(kind, "dev", TAG, "high", 1_000, at, 9.0, "偏差")  # type: ignore[arg-type]


async def test_replays_and_repeats_are_stored_and_pushed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    pushed: list[str] = []

    def notify(events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        pushed.extend(e.kind for e in events)

    sink = StoreSink(store, "samples", notify=notify, on_shift=lambda asset, at: {"operator": ["张三"]})
    tags = TagRegistry()
    batch = SampleBatch.make(tags, [1, 2], [tags.id(TAG), tags.id(TAG)], [1.0, 2.0])
    try:
        for offset in (0, 0):  # the same message twice: a sink restarted before its offset commit
            await sink.apply("samples", 3, offset, encode_samples_message(Route.LIVE, 2, batch))
        await sink.apply("samples", 3, 1, encode_watermark(5))
        transitions = [event("raised", 1_000), event("raised", 1_000), event("cleared", 4_000)]
        transitions.append(event("cleared", 4_000))  # each repeated, as after a takeover
        for offset, ev in enumerate(transitions):
            await sink.apply("alerts", 0, offset, encode_alert(ev, push=True))
        caplog.set_level(logging.ERROR, logger="plantpulse.scaleout.sink")
        await sink.apply("alerts", 0, 4, b"{not json")
        await sink.apply("samples", 0, 9, b"Lxx")
        await sink.apply("samples", 0, 10, b"Lyy")
        rows = await store.read_samples([TAG], 0, 10, TagRegistry())
        alerts = await store.alerts()
        journal = [j.action for j in await store.journal(alerts[0].id)]
    finally:
        await store.close()
    assert len(rows) == 2
    assert [(a.raised_at, a.cleared_at, a.on_shift) for a in alerts] == [
        (1_000, 4_000, {"operator": ["张三"]})
    ]
    assert journal == ["raised", "cleared"]
    assert pushed == ["raised", "cleared"]
    s = sink.stats
    assert (s.samples, s.sample_batches, s.replayed, s.raised, s.cleared, s.duplicates, s.malformed) == (
        2, 1, 1, 1, 1, 2, 3
    )  # fmt: skip
    assert len(caplog.records) == 2  # once per cause: a bad alert, a bad samples message


async def test_historical_transitions_are_stored_not_pushed(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    pushed: list[AlertEvent] = []
    sink = StoreSink(store, "samples", notify=lambda events, on_shift: pushed.extend(events))
    try:
        await sink.apply("alerts", 1, 0, encode_alert(event("raised", 1_000), push=False))
        assert len(await store.alerts()) == 1
    finally:
        await store.close()
    assert pushed == []
