"""The durable spool and the SpoolWriter, against an in-memory store that can go away."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.config import SpoolConfig
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.spool import (
    KIND_ALERTS,
    KIND_SAMPLES,
    Spool,
    SpoolFull,
    SpoolWriter,
    decode_samples,
    encode_samples,
    read_records,
)


class FakeStore:
    """Records what reaches it; ``down`` makes every call raise StoreUnavailable."""

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.batch_ids: list[str] = []
        self.rows: list[tuple[int, str, float]] = []
        self.alerts: list[AlertEvent] = []
        self.journal: list[JournalEntry] = []
        self.opened = 0

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("fake store at nowhere:0 is down")

    async def open(self) -> None:
        self._check()
        self.opened += 1

    async def close(self) -> None:
        pass

    async def write_samples(self, batch: SampleBatch, batch_id: str) -> bool:
        self._check()
        if batch_id in self.batch_ids:
            return False
        if any(s.tag in self.refuse for s in batch.samples()):
            raise StoreError("constraint violated")
        self.batch_ids.append(batch_id)
        self.rows += [(s.ts, s.tag, s.value) for s in batch.samples()]
        return True

    async def write_alert_events(
        self,
        events: Sequence[AlertEvent],
        batch_id: str,
        on_shift: dict[str, dict[str, list[str]]] | None = None,
    ) -> bool:
        self._check()
        if batch_id in self.batch_ids:
            return False
        self.batch_ids.append(batch_id)
        self.alerts += events
        return True

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None:
        self._check()
        self.journal += entries


class _Kill(BaseException):
    """Stands for the process being killed: nothing below the hook runs."""


def _batch(reg: TagRegistry, i: int, n: int = 5) -> SampleBatch:
    names = [f"line1/weld0{k % 3}/current" for k in range(n)]
    return SampleBatch.make(
        reg, [i * 1000 + k for k in range(n)], reg.ids(names), [float(i * n + k) for k in range(n)]
    )


def _event(i: int) -> AlertEvent:
    return AlertEvent("raised", "weld-dev", "line1/weld01/current", "high", i, i, 1.5, "m")


def test_samples_round_trip_through_a_fresh_registry() -> None:
    reg = TagRegistry(["unused/a", "line1/x/t", "line1/y/t"])
    b = SampleBatch.make(reg, [1, 2, 3], [2, 1, 2], [1.0, float("nan"), 3.0], [0, 0, 1])
    other = TagRegistry(["zzz"])
    back = decode_samples(encode_samples(b), other)
    assert repr(back.samples()) == repr(b.samples())  # repr: NaN != NaN
    assert "unused/a" not in other  # only the names the batch uses travel


def test_torn_tail_is_cut_and_committed_position_survives(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1 << 16)
    sp.open()
    for i in range(3):
        sp.append(KIND_ALERTS, f"b{i}", b"x" * 10)
    rec = sp.next()
    assert rec is not None and rec.batch_id == "b0"
    sp.commit(rec)
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    with seg.open("ab") as f:
        f.write(b"PPS1\xff\x00\x00")  # a crash in the middle of an append
    sp = Spool(tmp_path)
    sp.open()
    assert sp.pending_records == 2
    got = [sp.next(), sp.next(), sp.next()]
    assert [r.batch_id if r else None for r in got] == ["b1", "b2", None]
    sp.append(KIND_ALERTS, "b3", b"y")  # appends after the cut are readable
    nxt = sp.next()
    assert nxt is not None and nxt.batch_id == "b3"
    sp.close()


def test_segments_roll_and_spent_ones_are_deleted(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1 << 16)
    sp.open()
    for i in range(10):
        sp.append(KIND_SAMPLES, f"b{i}", bytes(20_000))
    assert len(list(tmp_path.glob("0*.seg"))) == 3  # rolled at 64 KiB: 4 + 4 + 2 records
    while (rec := sp.next()) is not None:
        sp.commit(rec)
    assert sp.pending_records == 0 and sp.pending_bytes == 0
    assert len(list(tmp_path.glob("0*.seg"))) == 1
    sp.close()


def test_full_spool_refuses_samples_but_keeps_alerts_in_reserve(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=1 << 20)
    sp.open()
    body = bytes(100_000)
    for i in range(10):
        sp.append(KIND_SAMPLES, f"b{i}", body)
    with pytest.raises(SpoolFull, match="is full"):
        sp.append(KIND_SAMPLES, "b10", body)
    sp.append(KIND_ALERTS, "a0", bytes(10_000))  # alerts may use the reserve
    sp.close()


def test_a_spool_directory_has_one_owner(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.open()
    with pytest.raises(StoreError, match="in use"):
        Spool(tmp_path).open()
    sp.close()


async def test_writer_spools_through_an_outage_and_replays_in_order(tmp_path: Path) -> None:
    store = FakeStore()
    reg = TagRegistry()
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path, fsync=False), backoff=(0.01, 0.05))
    await writer.start()
    await writer.write_samples(_batch(reg, 0))
    await asyncio.wait_for(writer.flush(), 5)
    store.down = True
    for i in range(1, 20):
        await writer.write_samples(_batch(reg, i))  # never raises, never blocks on the store
        if i % 5 == 0:
            await writer.write_alert_events([_event(i)], {"x": {"operator": ["Li"]}})
    await writer.append_journal([JournalEntry("x", 5, "notified", "notifier", {"to": "Li"})])
    await asyncio.wait_for(writer.wait_until(available=False), 5)
    assert not writer.stats().store_available
    assert writer.stats().pending_records == 23
    store.down = False
    await asyncio.wait_for(writer.flush(), 5)
    st = writer.stats()
    assert st.store_available and st.pending_records == 0 and st.outages == 1
    assert [v for _, _, v in store.rows] == [float(x) for x in range(100)]  # in order, once
    assert [e.raised_at for e in store.alerts] == [5, 10, 15]
    assert [j.action for j in store.journal] == ["notified"]
    await writer.stop()


async def test_replay_after_a_crash_between_commit_and_bookkeeping(tmp_path: Path) -> None:
    store = FakeStore()
    reg = TagRegistry()
    crashed: list[str] = []

    def crash(batch_id: str) -> None:
        if len(store.batch_ids) == 3:
            crashed.append(batch_id)
            raise _Kill  # ends the task where a kill would

    cfg = SpoolConfig(dir=tmp_path, fsync=False)
    writer = SpoolWriter(store, cfg, after_commit=crash)
    await writer.start()
    for i in range(6):
        await writer.write_samples(_batch(reg, i))
    task = writer._task
    assert task is not None
    with pytest.raises(_Kill):
        await asyncio.wait_for(task, 5)
    writer._task = None
    await writer.stop()  # only closes the spool: the crash left batch 3 committed but not booked
    assert len(store.batch_ids) == 3
    again = SpoolWriter(store, cfg)
    await again.start()
    await asyncio.wait_for(again.flush(), 5)
    assert again.stats().skipped == 1  # the committed batch was recognised by its id
    assert [v for _, _, v in store.rows] == [float(x) for x in range(30)]
    assert len(set(store.batch_ids)) == 6 and crashed[0] in store.batch_ids
    await again.stop()


async def test_a_batch_the_store_refuses_for_good_is_set_aside(tmp_path: Path) -> None:
    store = FakeStore()
    store.refuse.add("bad/tag/x")
    reg = TagRegistry()
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path, fsync=False))
    await writer.start()
    await writer.write_samples(SampleBatch.make(reg, [1], reg.ids(["bad/tag/x"]), [1.0]))
    await writer.write_samples(_batch(reg, 1))
    await asyncio.wait_for(writer.flush(), 5)
    assert writer.stats().rejected == 1 and len(store.rows) == 5
    await writer.stop()
    assert len(read_records(tmp_path)) <= 2
    assert (tmp_path / "rejected.seg").stat().st_size > 0


async def test_full_spool_is_counted_and_writes_keep_returning(tmp_path: Path) -> None:
    store = FakeStore()
    store.down = True
    reg = TagRegistry()
    cfg = SpoolConfig(dir=tmp_path, fsync=False, max_bytes=1 << 20)
    writer = SpoolWriter(store, cfg, backoff=(0.01, 0.05))
    await writer.start()
    reg.id("t/a/b")
    big = SampleBatch.make(reg, np.arange(10_000), np.zeros(10_000, np.int32), np.ones(10_000))
    for _ in range(6):
        await writer.write_samples(big)  # ~210 kB each: 4 fit in 1 MiB
    st = writer.stats()
    assert (st.spooled, st.dropped_full) == (4, 2) and "is full" in (st.last_error or "")
    await writer.write_alert_events([_event(1)])  # alerts still fit, in the reserve
    assert writer.stats().spooled == 5
    await writer.stop()
