"""Approved rule versions across a restart, with the real spool, snapshot file, store and log.

A "crash" is a process abandoned without a last snapshot (its spool closed as a kill closes
files); the next process opens the same state directory and change log. The snapshot names
the version its engine ran: a version approved while the process was down is reloaded into
(changed rules start fresh, their alerts closed), never resumed as the old condition; a switch
saves the snapshot at once, so a crash after it never re-evaluates records from before it
by the new rules, and its closing events are handed on even if the crash came first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.live import LiveRules
from plantpulse.approvals.service import Plant
from plantpulse.config import SpoolConfig, StoreConfig, load_config
from plantpulse.rules.engine import Engine
from plantpulse.samples import TagRegistry
from plantpulse.store import Store
from plantpulse.store.spool import SpoolWriter
from plantpulse.stream.pipeline import Pipeline
from plantpulse.stream.state import StateFile
from tests.approvals.helpers import CUR, SP, T0, TEMP, Recorded, S, approve_edit, at, make_plant, step

pytestmark = pytest.mark.slow


class Crash(BaseException):
    """The process dies here (raised from inside the pipeline by a test hook)."""


class Process:
    """One plantpulse process with approvals on, on a state directory that outlives it."""

    def __init__(self, plant: Plant, log: ChangeLog, store: Store, state: Path) -> None:
        self.plant, self.log, self.store, self.state = plant, log, store, state
        self.notifier = Recorded()
        self.writer: SpoolWriter | None = None
        self.live: LiveRules | None = None

    async def start(self) -> Pipeline:
        self.live = await LiveRules.start(self.plant, self.log, now=T0)
        self.writer = SpoolWriter(self.store, SpoolConfig(dir=self.state), open_store=False, keep_inputs=True)
        await self.writer.start()
        tags = TagRegistry()
        p = Pipeline(
            Engine(self.live.rules, tags),
            tags,
            self.writer,
            self.notifier,
            state=StateFile(self.state),
            rules=self.live,
        )
        await p.recover()
        return p

    async def crash(self) -> None:
        assert self.writer is not None
        await self.writer.stop()


@pytest.fixture
def plant(tmp_path: Path, store_config: StoreConfig) -> Plant:
    return Plant.of(load_config(make_plant(tmp_path, store_config)))


async def approve_limit(plant: Plant, log: ChangeLog, store: Store, root: Path, limit: int) -> int:
    return await approve_edit(plant, log, store, root, old="limit: 5}", new=f"limit: {limit}}}")


async def test_a_version_approved_while_down_closes_the_changed_rules_alert_and_keeps_the_others(
    tmp_path: Path, plant: Plant, change_log: ChangeLog, store: Store
) -> None:
    first = Process(plant, change_log, store, tmp_path / "state")
    p = await first.start()
    await step(p, [at(0, SP, 200.0), at(0, CUR, 206.0), at(0, TEMP, 90.0)])  # temp pends until 10 s
    assert [e.rule for e in await step(p, [at(3, CUR, 206.0)])] == ["weld-current"]
    await p.save()
    await first.crash()

    change = await approve_limit(plant, change_log, store, tmp_path, 8)  # 6 A off is no fault any more
    second = Process(plant, change_log, store, tmp_path / "state")
    p = await second.start()
    assert second.notifier.pushed == [
        ("cleared", "weld-current", 3 * S)
    ]  # closed at the snapshot's watermark
    assert await step(p, [at(4, CUR, 206.0)]) == []  # judged by the new limit
    raised = await step(p, beat=10)  # the unchanged rule's window, pending since 0 s, fires on time
    assert [(e.rule, e.raised_at - T0, e.rule_version) for e in raised] == [("weld-temp", 10 * S, 1)]
    saved = StateFile(tmp_path / "state").load()
    assert saved is not None and saved.ruleset == change  # saved at once under the live version
    await second.crash()
    alerts = sorted((a.rule, a.raised_at - T0, a.cleared_at) for a in await store.alerts())
    assert alerts == [("weld-current", 3 * S, T0 + 3 * S), ("weld-temp", 10 * S, None)]
    assert second.live is not None
    await second.live.poll()  # records the switch, as live.run does every approvals.poll
    applied = [(r.change, r.data["fresh"], r.data["closed"]) for r in await change_log.records()
               if r.action == "applied"]  # fmt: skip
    assert applied == [(change, 1, 1)]


async def test_a_pending_window_of_a_rule_changed_while_down_is_not_resumed(
    tmp_path: Path, plant: Plant, change_log: ChangeLog, store: Store
) -> None:
    first = Process(plant, change_log, store, tmp_path / "state")
    p = await first.start()
    await step(p, [at(0, SP, 200.0), at(0, CUR, 206.0)])  # pending under the limit of 5, due at 3 s
    await p.save()
    await first.crash()

    await approve_limit(plant, change_log, store, tmp_path, 8)
    second = Process(plant, change_log, store, tmp_path / "state")
    p = await second.start()
    assert await step(p, beat=4) == []  # the old condition's window would fire at 3 s
    await second.crash()
    assert await store.alerts() == []


async def test_a_crash_after_a_switch_replays_only_what_came_after_it(
    tmp_path: Path, plant: Plant, change_log: ChangeLog, store: Store
) -> None:
    first = Process(plant, change_log, store, tmp_path / "state")
    p = await first.start()
    await step(p, [at(0, SP, 200.0), at(0, CUR, 200.0)])
    await p.save()
    await step(p, [at(1, CUR, 204.0)])  # no fault under the limit of 5; one under 2 (due at 4 s)
    await approve_limit(plant, change_log, store, tmp_path, 2)
    assert first.live is not None and await first.live.poll()
    assert await step(p, [at(2, CUR, 204.0)]) == []  # the switch, then a fault from 2 s (due at 5 s)
    await first.crash()

    second = Process(plant, change_log, store, tmp_path / "state")
    p = await second.start()
    assert await step(p, beat=4) == []  # the sample at 1 s was judged by the old limit, and stays so
    raised = await step(p, beat=5)
    assert [(e.rule, e.raised_at - T0, e.rule_version) for e in raised] == [("weld-current", 5 * S, 2)]
    await second.crash()


async def test_the_closing_events_of_a_switch_survive_a_crash_before_they_are_handed_on(
    tmp_path: Path, plant: Plant, change_log: ChangeLog, store: Store
) -> None:
    first = Process(plant, change_log, store, tmp_path / "state")
    p = await first.start()
    await step(p, [at(0, SP, 200.0), at(0, CUR, 206.0)])
    assert len(await step(p, [at(3, CUR, 206.0)])) == 1
    await approve_limit(plant, change_log, store, tmp_path, 8)
    assert first.live is not None and await first.live.poll()

    async def dies(events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        raise Crash  # after the switch's snapshot, before its events reach the spool

    assert first.writer is not None
    first.writer.write_alert_events = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await step(p, [at(4, CUR, 206.0)])
    await first.crash()

    second = Process(plant, change_log, store, tmp_path / "state")
    await second.start()
    assert second.notifier.pushed == [("cleared", "weld-current", 3 * S)]
    await second.crash()
    third = Process(plant, change_log, store, tmp_path / "state")
    await third.start()
    assert third.notifier.pushed == []  # handed on once
    await third.crash()
    (alert,) = await store.alerts()
    assert (alert.raised_at, alert.cleared_at, alert.rule_version) == (T0 + 3 * S, T0 + 3 * S, 1)
    assert [j.action for j in await store.journal(alert.id)] == ["raised", "cleared"]
