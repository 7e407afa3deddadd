"""The durable spool and the SpoolWriter, against an in-memory store that can go away."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.config import SpoolConfig
from plantpulse.errors import SpoolInUse, StoreError, StoreUnavailable
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.records import (
    KIND_ALERTS,
    KIND_INPUT,
    KIND_SAMPLES,
    Route,
    decode_alerts,
    decode_input,
    decode_samples,
    encode_alerts,
    encode_input,
    encode_samples,
)
from plantpulse.store.spool import Spool, SpoolFull, SpoolWriter, read_records


class FakeStore:
    """Records what reaches it; ``down`` makes every call raise StoreUnavailable."""

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.batch_ids: list[str] = []
        self.rows: list[tuple[int, str, float]] = []
        self.alerts: list[AlertEvent] = []
        self.journal: list[JournalEntry] = []
        self.transactions: list[int] = []  # batches per write_sample_batches call
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
        (done,) = await self.write_sample_batches([(batch_id, batch)])
        return done

    async def write_sample_batches(self, batches: Sequence[tuple[str, SampleBatch]]) -> list[bool]:
        """All or nothing, like one transaction."""
        self._check()
        if any(s.tag in self.refuse for _, b in batches for s in b.samples()):
            raise StoreError("constraint violated")
        self.transactions.append(len(batches))
        done = []
        for batch_id, batch in batches:
            done.append(batch_id not in self.batch_ids)
            if done[-1]:
                self.batch_ids.append(batch_id)
                self.rows += [(s.ts, s.tag, s.value) for s in batch.samples()]
        return done

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


def test_a_spool_directory_has_one_owner_and_says_which(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.open()
    with pytest.raises(SpoolInUse) as refused:
        Spool(tmp_path, lock_wait=0.2).open()
    assert str(refused.value) == f"spool {tmp_path} is in use by another plantpulse (pid {os.getpid()})"
    sp.close()


async def test_a_restart_waits_for_the_previous_owner_to_go(tmp_path: Path) -> None:
    """A supervisor restarting right after a kill must not crash-loop on the lock."""
    first = Spool(tmp_path)
    first.open()
    second = Spool(tmp_path, lock_wait=30)
    opening = asyncio.create_task(asyncio.to_thread(second.open))
    done, _ = await asyncio.wait([opening], timeout=0.3)
    assert not done  # still waiting for the lock
    first.close()  # the old process is gone
    await asyncio.wait_for(opening, 10)
    second.close()


def test_spool_files_are_private(tmp_path: Path) -> None:
    """Acknowledge links travel through the spool: nobody but the owner may read it."""
    d = tmp_path / "spool"
    sp = Spool(d, segment_bytes=1 << 16)
    sp.open()
    rec = None
    for i in range(5):
        sp.append(KIND_ALERTS, f"b{i}", bytes(20_000))
    rec = sp.next()
    assert rec is not None
    sp.commit(rec)
    sp.reject(rec)
    sp.close()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    files = list(d.iterdir())
    assert {p.name for p in files} >= {"LOCK", "committed", "rejected.seg", "000000000001.seg"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}


def test_input_segments_stay_until_the_snapshot_covers_them(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1 << 16, keep_inputs=True)
    sp.open()
    for i in range(10):
        sp.append(KIND_INPUT, f"b{i}", bytes(20_000))
    while (rec := sp.next()) is not None:
        sp.commit(rec)  # the store has everything ...
    assert len(list(tmp_path.glob("0*.seg"))) == 3  # ... but the engine snapshot has nothing yet
    assert [r.batch_id for r in sp.read_after(None, 100)] == [f"b{i}" for i in range(10)]
    sp.retain((2, 0))  # the snapshot covers the first segment
    assert sorted(p.name for p in tmp_path.glob("0*.seg")) == ["000000000002.seg", "000000000003.seg"]
    after = sp.read_after((2, 0), 100)
    assert [r.batch_id for r in after] == [f"b{i}" for i in range(4, 10)]
    assert [r.batch_id for r in sp.read_after(after[1].position, 2)] == ["b6", "b7"]
    sp.close()


async def test_concurrent_appends_share_one_fsync(tmp_path: Path) -> None:
    writer = SpoolWriter(FakeStore(), SpoolConfig(dir=tmp_path, fsync=True))
    await writer.start()
    reg = TagRegistry()
    await asyncio.gather(*(writer.write_samples(_batch(reg, i)) for i in range(200)))
    st = writer.stats()
    assert st.spooled == 200 and len(read_records(tmp_path)) == 200  # every write returned once on disk
    assert st.fsyncs <= 5  # not 200
    await writer.stop()


async def test_a_backlog_is_committed_many_records_per_transaction(tmp_path: Path) -> None:
    store = FakeStore()
    store.down = True
    reg = TagRegistry()
    cfg = SpoolConfig(dir=tmp_path, fsync=False, commit_samples=100)
    writer = SpoolWriter(store, cfg, backoff=(0.01, 0.05))
    await writer.start()
    await asyncio.wait_for(writer.wait_until(available=False), 5)
    for i in range(60):
        await writer.write_samples(_batch(reg, i))  # 5 samples each
        if i == 30:
            await writer.write_alert_events([_event(i)])
    store.down = False
    await asyncio.wait_for(writer.flush(), 5)
    assert [v for _, _, v in store.rows] == [float(x) for x in range(300)]  # in order, once
    assert max(store.transactions) == 20 and len(store.transactions) == 4  # 100 samples each, not 60
    assert writer.stats().committed == 61 and writer.stats().transactions == 5  # + the alert record
    await writer.stop()


async def test_a_refused_record_in_a_group_is_found_and_set_aside_alone(tmp_path: Path) -> None:
    store = FakeStore()
    store.down = True
    store.refuse.add("bad/tag/x")
    reg = TagRegistry()
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path, fsync=False), backoff=(0.01, 0.05))
    await writer.start()
    await asyncio.wait_for(writer.wait_until(available=False), 5)
    for i in range(10):
        await writer.write_samples(_batch(reg, i))
        if i == 4:
            await writer.write_samples(SampleBatch.make(reg, [1], reg.ids(["bad/tag/x"]), [1.0]))
    store.down = False
    await asyncio.wait_for(writer.flush(), 5)
    assert writer.stats().rejected == 1
    assert [v for _, _, v in store.rows] == [float(x) for x in range(50)]
    await writer.stop()


class RefusingStore(FakeStore):
    def __init__(self, error: StoreError) -> None:
        super().__init__()
        self.error = error

    async def open(self) -> None:
        raise self.error


async def test_opened_tells_a_refusal_from_an_outage(tmp_path: Path) -> None:
    refusing = SpoolWriter(
        RefusingStore(StoreError("password authentication failed")), SpoolConfig(dir=tmp_path / "a")
    )
    await refusing.start()
    with pytest.raises(StoreError, match="password"):
        await asyncio.wait_for(refusing.opened(), 5)
    await refusing.stop()
    away = SpoolWriter(RefusingStore(StoreUnavailable("connection refused")), SpoolConfig(dir=tmp_path / "b"))
    await away.start()
    await asyncio.wait_for(away.opened(), 5)  # an outage: keep spooling
    await away.stop()


def test_input_records_round_trip() -> None:
    reg = TagRegistry(["a/b/c"])
    b = SampleBatch.make(reg, [5, 6], [0, 0], [1.0, 2.0])
    got = decode_input(encode_input(Route.HISTORICAL, "源-1", 6, b), TagRegistry())
    assert (got.route, got.source, got.watermark) == (Route.HISTORICAL, "源-1", 6)
    assert got.batch is not None and repr(got.batch.samples()) == repr(b.samples())
    beat = decode_input(encode_input(Route.HEARTBEAT, "s", None, None), TagRegistry())
    assert (beat.route, beat.watermark, beat.batch) == (Route.HEARTBEAT, None, None)


def test_alert_records_keep_the_rule_version_and_older_ones_still_decode() -> None:
    ev = AlertEvent("raised", "r", "a/b/c", "high", 5, 5, 1.0, "m", rule_version=7)
    assert decode_alerts(encode_alerts([ev], None))[0] == [ev]
    old = json.loads(encode_alerts([ev], None))
    del old["events"][0]["rule_version"]  # written before approvals
    assert decode_alerts(json.dumps(old).encode())[0] == [replace(ev, rule_version=None)]


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

    def crash(batch_id: str) -> None:
        raise _Kill  # ends the task where a kill would: after the store's commit, before the spool's

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
    await writer.stop()  # only closes the spool: the crash left batches committed but not booked
    in_store = len(store.batch_ids)
    assert in_store >= 1
    again = SpoolWriter(store, cfg)
    await again.start()
    await asyncio.wait_for(again.flush(), 5)
    assert again.stats().skipped == in_store  # the committed batches were recognised by their ids
    assert [v for _, _, v in store.rows] == [float(x) for x in range(30)]
    assert len(set(store.batch_ids)) == 6
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
