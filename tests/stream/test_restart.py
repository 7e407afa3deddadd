"""Crash-safe state: the engine snapshot plus the spool after it is exactly the state before a crash.

A "crash" here is a pipeline abandoned without a last snapshot (its spool closed as a kill
closes files); the next pipeline opens the same spool and snapshot, as the next process would.
The real-process version, SIGKILL under an MQTT stream, is tests/e2e/test_crash.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

from plantpulse.alerts import AlertEvent
from plantpulse.config import SpoolConfig, StreamConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Known, Pipeline
from plantpulse.stream.state import StateFile
from plantpulse.timefmt import NS_PER_S

T0 = 1_767_225_600 * NS_PER_S
RULES = """\
rules:
  - {id: hot, tag: line1/*/temp, above: 80, for: 3s, severity: high}
"""
TEMP = "line1/oven1/temp"


def s(at: float, value: float) -> Sample:
    return Sample(T0 + round(at * NS_PER_S), TEMP, value)


class Recorded:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, int]] = []

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        self.pushed += [(e.kind, e.at) for e in events]


class Plant:
    """One process' worth of pipeline on a state directory that outlives it."""

    def __init__(self, store: SQLiteStore, state: Path) -> None:
        self.store = store
        self.state = state
        self.notifier = Recorded()
        self.writer: SpoolWriter | None = None

    async def start(self, known: Known | None = None) -> Pipeline:
        self.writer = SpoolWriter(self.store, SpoolConfig(dir=self.state), open_store=False, keep_inputs=True)
        await self.writer.start()
        tags = TagRegistry()
        p = Pipeline(
            Engine(load_rules_text(RULES), tags),
            tags,
            self.writer,
            self.notifier,
            config=StreamConfig(),
            state=StateFile(self.state),
            known=known,
        )
        await p.recover()
        return p

    async def crash(self) -> None:
        """No last snapshot; what is spooled stays (and reaches the store, as the next start would)."""
        assert self.writer is not None
        await self.writer.stop()


async def test_a_pending_for_survives_a_restart(store: SQLiteStore, tmp_path: Path) -> None:
    first = Plant(store, tmp_path / "state")
    p = await first.start()
    await p.sink.put([s(0, 90.0)])
    assert await p.step() == []
    await p.save()  # the periodic snapshot: pending since 0 s
    await p.sink.put([s(1, 91.0)])
    assert await p.step() == []
    await first.crash()

    second = Plant(store, tmp_path / "state")
    p = await second.start()
    assert p.watermark == T0 + 1 * NS_PER_S  # restored, and the record after the snapshot replayed
    p.sink.heartbeat("src", T0 + 3 * NS_PER_S)
    events = await p.step()
    assert [(e.kind, e.raised_at) for e in events] == [("raised", T0 + 3 * NS_PER_S)]  # not 1 s + 3 s
    await second.crash()
    alerts = await store.alerts()
    assert [(a.raised_at, a.cleared_at) for a in alerts] == [(T0 + 3 * NS_PER_S, None)]


async def test_an_active_alert_clears_after_a_restart_and_is_neither_stored_nor_pushed_twice(
    store: SQLiteStore, tmp_path: Path
) -> None:
    first = Plant(store, tmp_path / "state")
    p = await first.start()
    await p.sink.put([s(0, 90.0)])
    await p.step()
    await p.save()
    await p.sink.put([s(3, 91.0)])
    assert [e.kind for e in await p.step()] == ["raised"]  # stored and pushed, then the crash
    assert first.notifier.pushed == [("raised", T0 + 3 * NS_PER_S)]
    await first.crash()

    second = Plant(store, tmp_path / "state")
    p = await second.start()  # the replay raises the same alert again ...
    assert second.notifier.pushed == []  # ... which was handed on before: not pushed again
    await p.sink.put([s(5, 20.0)])
    assert [(e.kind, e.at) for e in await p.step()] == [("cleared", T0 + 5 * NS_PER_S)]
    assert second.notifier.pushed == [("cleared", T0 + 5 * NS_PER_S)]
    await second.crash()
    alerts = await store.alerts()
    assert [(a.raised_at, a.cleared_at) for a in alerts] == [(T0 + 3 * NS_PER_S, T0 + 5 * NS_PER_S)]
    assert [j.action for j in await store.journal(alerts[0].id)] == ["raised", "cleared"]


async def test_input_the_engine_never_saw_is_evaluated_at_the_next_start(
    store: SQLiteStore, tmp_path: Path
) -> None:
    first = Plant(store, tmp_path / "state")
    p = await first.start()
    await p.sink.put([s(0, 90.0)])
    await p.sink.put([s(3, 91.0)])  # durable, acknowledged; the process dies before evaluating
    await first.crash()

    second = Plant(store, tmp_path / "state")
    p = await second.start()
    assert second.notifier.pushed == [("raised", T0 + 3 * NS_PER_S)]  # new: stored and pushed now
    await second.crash()
    assert [a.raised_at for a in await store.alerts()] == [T0 + 3 * NS_PER_S]


async def test_a_raise_the_outbox_never_got_is_handed_to_the_notifier_again(
    store: SQLiteStore, tmp_path: Path
) -> None:
    first = Plant(store, tmp_path / "state")
    p = await first.start()
    await p.sink.put([s(0, 90.0), s(3, 91.0)])
    await p.step()  # raised: the alert record is in the spool; say the outbox save was lost
    await first.crash()
    asked: list[Collection[str]] = []

    async def known(ids: Collection[str]) -> set[str]:
        asked.append(ids)
        return set()

    second = Plant(store, tmp_path / "state")
    await second.start(known)
    assert second.notifier.pushed == [("raised", T0 + 3 * NS_PER_S)]
    assert len(asked) == 1
    await second.crash()
    assert len(await store.alerts()) == 1


async def test_a_snapshot_that_cannot_be_read_is_set_aside(store: SQLiteStore, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "engine.json").write_text(json.dumps({"version": 99}), encoding="utf-8")
    plant = Plant(store, state)
    p = await plant.start()
    assert p.watermark is None
    assert (state / "engine.json.bad").exists()
    await plant.crash()
