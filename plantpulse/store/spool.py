"""Durable local spool: the pipeline's input log, and the ``SpoolWriter`` that drains it to the store.

Every write is first appended to an append-only, fsync'd segment file as a framed record
carrying a fresh batch id; a background task then commits the records to the store in order
and only afterwards advances the committed position. So:

* collectors' samples are appended (``submit_input``) *before* they are acknowledged to the
  device or broker and before the engine sees them: the spool is the pipeline's input log, so
  a crash loses nothing that was acknowledged, and a restart re-evaluates from it;
* appends are group-committed: one dedicated thread writes whatever was submitted while the
  previous fsync ran, then fsyncs once for the whole group, so many concurrent producers
  share one fsync and throughput stays;
* the pipeline never waits for the database and never sees an outage: while the store is
  unavailable records pile up in the spool and the task retries with backoff;
* a crash between the store's commit and the position update replays batches whose ids the
  store already holds: the store skips them, so every row lands exactly once;
* after an outage the backlog is committed many records per store transaction
  (``Store.write_sample_batches``, at most ``commit_samples`` samples each).

Layout of ``dir`` (0700; every file 0600): ``NNNNNNNNNNNN.seg`` segment files, a ``committed``
file (``segment offset``, replaced atomically, not fsync'd: a lost update only means skipped
replays), ``rejected.seg`` (records the store refused for good, kept for inspection) and a
``LOCK`` file held with flock. A segment is deleted once the store committed everything in it
and, with ``keep_inputs``, once the engine snapshot covers it (``retain``).

Record frame (little-endian): magic ``PPS1``, u32 payload length, u32 crc32 of the payload;
payload: u8 kind, u8 batch-id length, batch id, body. A torn tail (crash mid-append) fails the
length or crc check and is cut off at open. The kinds and bodies are in ``store.records``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.config import SpoolConfig
from plantpulse.errors import AccessDenied, SpoolInUse, StoreError, StoreUnavailable
from plantpulse.observe.histogram import STORE_WRITE_BUCKETS, Histogram, HistogramSnapshot
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.base import Store
from plantpulse.store.files import fsync_dir, open_private, private_dir, replace_private
from plantpulse.store.records import (
    KIND_ALERTS,
    KIND_INPUT,
    KIND_JOURNAL,
    KIND_SAMPLES,
    Route,
    decode_alerts,
    decode_input,
    decode_journal,
    decode_samples,
    encode_alerts,
    encode_input,
    encode_journal,
    encode_samples,
)

log = logging.getLogger(__name__)

__all__ = [
    "Appended",
    "Position",
    "Record",
    "Spool",
    "SpoolFull",
    "SpoolStats",
    "SpoolWriter",
    "read_records",
]

_MAGIC = b"PPS1"
_FRAME = struct.Struct("<4sII")
_MAX_PAYLOAD = 1 << 31

Position = tuple[int, int]
"""(segment number, offset just past a record): a place in the spool; tuples compare in order."""


class SpoolFull(StoreError):
    """The spool reached its size bound while the store is unavailable; the record was refused."""


@dataclass(frozen=True, slots=True)
class Record:
    batch_id: str
    kind: int
    body: bytes
    segment: int
    end: int  # offset just past this record in ``segment``: the committed position once applied

    @property
    def position(self) -> Position:
        return (self.segment, self.end)


def lock_holder(path: Path) -> int | None:
    """The pid written in a LOCK file by its holder (None if unreadable or from before pids)."""
    try:
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _seg_name(n: int) -> str:
    return f"{n:012d}.seg"


def _scan(path: Path) -> tuple[int, int]:
    """(valid length, number of records) of a segment; everything after is a torn tail."""
    valid = count = 0
    with path.open("rb") as f:
        while True:
            head = f.read(_FRAME.size)
            if len(head) < _FRAME.size:
                return valid, count
            magic, length, crc = _FRAME.unpack(head)
            if magic != _MAGIC or length >= _MAX_PAYLOAD:
                return valid, count
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return valid, count
            valid += _FRAME.size + length
            count += 1


def _frame(kind: int, batch_id: str, body: bytes) -> bytes:
    bid = batch_id.encode()
    payload = b"".join((bytes((kind, len(bid))), bid, body))
    return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _record(payload: bytes, segment: int, end: int) -> Record:
    kind, idlen = payload[0], payload[1]
    return Record(payload[2 : 2 + idlen].decode(), kind, payload[2 + idlen :], segment, end)


class Spool:
    """Append-only framed records in segment files, bounded by ``max_bytes`` of pending data.

    Blocking file I/O; thread-safe, so the writer runs it in worker threads. Records of kind
    samples and input are refused beyond ``max_bytes``; alerts and journal entries may use a
    further ``max_bytes // 16`` so that a spool full of samples still keeps the alerts.
    With ``keep_inputs``, segments are also kept until ``retain`` says the engine no longer
    needs them (until the first call: every segment present at open).
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: bool = True,
        *,
        keep_inputs: bool = False,
        lock_wait: float = 10.0,
    ) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.keep_inputs = keep_inputs
        self.lock_wait = lock_wait
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}  # segment number -> valid bytes
        self._committed: Position = (1, 0)
        self._read: Position = (1, 0)
        self._retain: Position | None = None
        self._pending_records = 0
        self._out: IO[bytes] | None = None
        self._lockfile: IO[bytes] | None = None
        self._reader: tuple[int, IO[bytes]] | None = None

    # -- open / close ----------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory (waiting up to ``lock_wait`` s for a previous owner that is still
        going away), cut a torn tail, find the committed position and what is pending.

        The lock holder's pid is written in ``LOCK``, so a second process is told who has it
        (SpoolInUse); a directory it may not create or write is AccessDenied."""
        try:
            private_dir(self.dir)
            lockfile = open_private(self.dir / "LOCK", "ab")
        except OSError as e:
            if AccessDenied.is_denied(e):
                raise AccessDenied("the spool and state directory", self.dir, e) from e
            raise
        deadline = time.monotonic() + self.lock_wait
        waiting = False
        while True:
            try:
                fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                holder = lock_holder(self.dir / "LOCK")
                if time.monotonic() >= deadline:
                    lockfile.close()
                    raise SpoolInUse(self.dir, holder) from None
                if not waiting:
                    waiting = True
                    log.info(
                        "spool %s is held by pid %s; waiting up to %g s for it to go away",
                        self.dir, holder or "?", self.lock_wait,
                    )  # fmt: skip
                time.sleep(0.05)  # a killed predecessor releases the lock as it exits
        lockfile.truncate(0)  # append mode: the pid is the file's whole content
        lockfile.write(f"{os.getpid()}\n".encode())
        lockfile.flush()
        self._lockfile = lockfile
        segs = sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())
        committed = self._load_committed()
        if segs and committed[0] < segs[0]:
            committed = (segs[0], 0)  # the position file is older than the segment clean-up
        for n in segs:
            path = self.dir / _seg_name(n)
            valid, count = _scan(path)
            if valid < path.stat().st_size:
                log.warning("spool %s: cutting %d bytes of a torn record", path, path.stat().st_size - valid)
                with path.open("r+b") as f:
                    f.truncate(valid)
            self._sizes[n] = valid
            if n > committed[0]:
                self._pending_records += count
            elif n == committed[0]:
                self._pending_records += count - self._count_until(path, committed[1])
        if not segs:
            self._sizes[committed[0]] = 0
        self._committed = self._read = committed
        if self.keep_inputs:
            self._retain = (min(self._sizes), 0)
        last = max(self._sizes)
        self._out = open_private(self.dir / _seg_name(last), "ab")

    @staticmethod
    def _count_until(path: Path, offset: int) -> int:
        count = pos = 0
        with path.open("rb") as f:
            while pos < offset:
                head = f.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    break
                pos += _FRAME.size + _FRAME.unpack(head)[1]
                f.seek(pos)
                count += 1
        return count

    def _load_committed(self) -> Position:
        try:
            seg, off = (self.dir / "committed").read_text().split()
            return int(seg), int(off)
        except (FileNotFoundError, ValueError):
            return (1, 0)

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader[1].close()
                self._reader = None
            for f in (self._out, self._lockfile):
                if f is not None:
                    f.close()
            self._out = self._lockfile = None

    # -- state -------------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        seg, off = self._committed
        return sum(size for n, size in self._sizes.items() if n >= seg) - off

    @property
    def pending_records(self) -> int:
        return self._pending_records

    @property
    def end(self) -> Position:
        """Just past the last record appended."""
        last = max(self._sizes)
        return (last, self._sizes[last])

    @property
    def first(self) -> Position:
        """The start of the oldest segment still on disk."""
        return (min(self._sizes), 0)

    # -- append ------------------------------------------------------------------------------------

    def append(self, kind: int, batch_id: str, body: bytes) -> Position:
        """Append and (by default) fsync one record; raises SpoolFull beyond the bound."""
        (result,) = self.append_many([(kind, batch_id, body)])
        if isinstance(result, StoreError):
            raise result
        return result

    def append_many(self, items: Sequence[tuple[int, str, bytes]]) -> list[Position | StoreError]:
        """Append records in order and fsync once for all of them. Each gets its position, or
        the error that refused it (SpoolFull beyond the bound; StoreError when the disk failed,
        in which case nothing of the failed write is left behind)."""
        out: list[Position | StoreError] = []
        with self._lock:
            if self._out is None:
                return [StoreError(f"spool {self.dir} is not open") for _ in items]
            wrote = False
            for i, (kind, batch_id, body) in enumerate(items):
                frame = _frame(kind, batch_id, body)
                limit = self.max_bytes
                if kind in (KIND_ALERTS, KIND_JOURNAL):
                    limit += self.max_bytes // 16
                if self.pending_bytes + len(frame) > limit:
                    out.append(
                        SpoolFull(
                            f"spool {self.dir} is full ({self.pending_bytes} of {self.max_bytes} bytes "
                            f"pending while the store is unavailable): record {batch_id} refused"
                        )
                    )
                    continue
                last = max(self._sizes)
                try:
                    if self._sizes[last] >= self.segment_bytes:
                        if wrote:
                            self._sync()
                        self._out.close()
                        last += 1
                        self._sizes[last] = 0
                        self._out = open_private(self.dir / _seg_name(last), "ab")
                        if self.fsync:
                            fsync_dir(self.dir)
                    self._out.write(frame)
                    self._out.flush()
                except OSError as e:
                    self._cut_back(last)
                    error = StoreError(f"spool {self.dir}: cannot write: {e}")
                    out += [error] * (len(items) - i)
                    return out
                wrote = True
                self._sizes[last] += len(frame)
                self._pending_records += 1
                out.append((last, self._sizes[last]))
            if wrote:
                try:
                    self._sync()
                except OSError as e:  # nothing of this group can be trusted to be on disk
                    return [StoreError(f"spool {self.dir}: fsync failed: {e}") for _ in items]
        return out

    def _sync(self) -> None:
        assert self._out is not None
        if self.fsync:
            os.fsync(self._out.fileno())

    def _cut_back(self, last: int) -> None:
        """Remove a partly written frame so that later appends stay readable."""
        with contextlib.suppress(OSError):
            assert self._out is not None
            self._out.truncate(self._sizes[last])

    # -- read / commit -----------------------------------------------------------------------------

    def next(self) -> Record | None:
        """The record after the last one handed out, or None when everything was handed out."""
        got = self.take(1)
        return got[0] if got else None

    def take(self, max_records: int) -> list[Record]:
        """Up to ``max_records`` records after the last one handed out, in order."""
        with self._lock:
            out, self._read = self._records(self._read, max_records)
        return out

    def read_after(self, pos: Position | None, max_records: int) -> list[Record]:
        """Up to ``max_records`` records after ``pos`` (None: from the oldest segment), whatever
        was handed out or committed: what a restarting engine re-evaluates."""
        with self._lock:
            return self._records(pos if pos is not None else self.first, max_records)[0]

    def _records(self, pos: Position, max_records: int) -> tuple[list[Record], Position]:
        """Records after ``pos`` and the position after the last of them (hold the lock)."""
        out: list[Record] = []
        seg, off = pos
        while len(out) < max_records:
            if off >= self._sizes.get(seg, 0):
                if seg >= max(self._sizes):
                    break
                seg, off = seg + 1, 0
                continue
            f = self._reader_for(seg)
            f.seek(off)
            _, length, _ = _FRAME.unpack(f.read(_FRAME.size))
            payload = f.read(length)
            off += _FRAME.size + length
            out.append(_record(payload, seg, off))
        return out, (seg, off)

    def _reader_for(self, seg: int) -> IO[bytes]:
        if self._reader is None or self._reader[0] != seg:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (seg, (self.dir / _seg_name(seg)).open("rb"))
        return self._reader[1]

    def commit(self, rec: Record, count: int = 1) -> None:
        """Record that ``rec`` and the ``count - 1`` before it (everything up to ``rec``) are in
        the store; drop segments nobody needs any more."""
        with self._lock:
            self._committed = rec.position
            self._pending_records -= count
            replace_private(self.dir / "committed", f"{rec.segment} {rec.end}\n".encode(), sync=False)
            self._collect()

    def retain(self, pos: Position) -> None:
        """The engine's snapshot covers everything up to ``pos``: earlier segments may go once
        the store has them too."""
        with self._lock:
            self._retain = pos
            self._collect()

    def _collect(self) -> None:
        keep = self._committed[0] if self._retain is None else min(self._committed[0], self._retain[0])
        for n in [n for n in self._sizes if n < keep]:
            del self._sizes[n]
            if self._reader is not None and self._reader[0] == n:
                self._reader[1].close()
                self._reader = None
            with contextlib.suppress(FileNotFoundError):
                (self.dir / _seg_name(n)).unlink()

    def reject(self, rec: Record) -> None:
        """Keep a record the store refused for good in ``rejected.seg``, then move past it."""
        with open_private(self.dir / "rejected.seg", "ab") as f:
            f.write(_frame(rec.kind, rec.batch_id, rec.body))
        self.commit(rec)


def _stored_batch(rec: Record, tags: TagRegistry) -> SampleBatch | None:
    """The samples a record puts into the store (None for a heartbeat)."""
    if rec.kind == KIND_SAMPLES:
        return decode_samples(rec.body, tags)
    return decode_input(rec.body, tags).batch


# -- the writer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """A read-only snapshot for logs, the board and metrics."""

    store_available: bool
    pending_records: int
    pending_bytes: int
    spooled: int  # records appended since start
    committed: int  # records written to the store since start
    skipped: int  # replayed records the store already held (exactly-once at work)
    dropped_full: int  # records refused because the spool was full (or its disk failed)
    rejected: int  # records the store refused for good (kept in rejected.seg)
    outages: int
    last_error: str | None
    fsyncs: int = 0  # append groups: records appended / fsyncs is the grouping at work
    transactions: int = 0  # store transactions that committed records
    write_seconds: HistogramSnapshot | None = None  # how long each of those took in the store


Appended = asyncio.Future[Position | None]
"""Resolves once the record is on disk (its position), or to None when it was refused."""


class SpoolWriter:
    """What the pipeline writes through: ``submit_*``/``write_*`` append to the spool and
    resolve once the record is fsync'd, never raising on an outage; a background task commits
    to the store in order, retrying with backoff.

    ``await start()`` opens the spool (recovering what a previous run left) and starts the
    appender and the commit task, which also opens the store unless ``open_store=False``;
    ``await opened()`` reports how the first attempt to open the store went; ``await stop()``
    drains for at most ``drain_timeout`` s, stops the tasks and closes the spool (and the store
    if it opened it). Whatever is not committed by then stays on disk for the next start.
    """

    def __init__(
        self,
        store: Store,
        config: SpoolConfig | None = None,
        *,
        open_store: bool = True,
        keep_inputs: bool = False,
        backoff: tuple[float, float] = (0.2, 30.0),
        after_commit: Callable[[str], None] | None = None,
    ) -> None:
        cfg = config or SpoolConfig()
        if cfg.dir is None:
            raise ValueError("SpoolWriter needs a spool directory (StoreConfig fills it in from the URL)")
        self.store = store
        self.spool = Spool(
            cfg.dir, cfg.max_bytes, cfg.segment_bytes, cfg.fsync,
            keep_inputs=keep_inputs, lock_wait=cfg.lock_wait / 1e9,
        )  # fmt: skip
        self._commit_samples = cfg.commit_samples
        self._open_store = open_store
        self._store_open = not open_store
        self._backoff = backoff
        self._after_commit = after_commit  # test hook: a crash here is the commit/bookkeeping gap
        self._tags = TagRegistry()  # names of replayed batches are interned here
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._appends: list[tuple[int, bytes, Appended]] = []
        self._append_wake = asyncio.Event()
        self._appender: asyncio.Task[None] | None = None
        self._inflight = 0  # records of the group being written
        self._io: ThreadPoolExecutor | None = None
        self._closing = False
        self._first_open: asyncio.Future[None] | None = None
        self._available = True
        self._down_since = 0.0
        self._up = asyncio.Event()  # set while the store takes writes
        self._down = asyncio.Event()  # set while it does not
        self._counts = dict.fromkeys(
            (
                "spooled", "committed", "skipped", "dropped_full", "rejected", "outages", "fsyncs",
                "transactions",
            ),
            0,
        )  # fmt: skip
        self._full_logged = False
        self._last_error: str | None = None
        self._write_seconds = Histogram(STORE_WRITE_BUCKETS)

    async def __aenter__(self) -> SpoolWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self.spool.open)
        if self.spool.pending_records:
            log.info(
                "spool %s: %d records left by a previous run will be committed",
                self.spool.dir,
                self.spool.pending_records,
            )
        self._first_open = asyncio.get_running_loop().create_future()
        if not self._open_store:
            self._first_open.set_result(None)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantpulse-spool-append")
        self._appender = asyncio.create_task(self._append_loop(), name="plantpulse-spool-appender")
        self._task = asyncio.create_task(self._run(), name="plantpulse-spool-writer")

    async def opened(self) -> None:
        """Return once the first attempt to open the store succeeded or met an outage (then
        the writer keeps spooling and retrying); raise StoreError if the store refused for good
        (bad credentials, a failed migration): retrying will not help, and nobody should think
        their data is on its way."""
        assert self._first_open is not None, "start() first"
        await asyncio.shield(self._first_open)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        if self._appender is not None:
            self._closing = True
            self._append_wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await asyncio.shield(self._appender)
            if not self._appender.done():
                log.warning("spool: appends still running after %.0f s; stopping anyway", drain_timeout)
                self._appender.cancel()
                await asyncio.gather(self._appender, return_exceptions=True)
            self._appender = None
        if self._task is not None:
            if self._store_open and self._available:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drain_timeout):
                        await self.flush()
            self._stop.set()
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._io is not None:
            self._io.shutdown(wait=False)  # a hung disk must not hang the stop
            self._io = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout):
                await asyncio.to_thread(self.spool.close)
        if self._open_store and self._store_open:
            await self.store.close()
            self._store_open = False

    # -- the pipeline's side -----------------------------------------------------------------------

    def submit(self, kind: int, body: bytes) -> Appended:
        """Queue one record for the next append group; the future resolves once it is fsync'd
        (to its position), or to None when it was refused (spool full, disk failed, closed):
        counted in ``dropped_full`` and logged once per episode, never raised."""
        fut: Appended = asyncio.get_running_loop().create_future()
        if self._closing or self._appender is None:
            self._refused(StoreError(f"spool {self.spool.dir} is closed"))
            fut.set_result(None)
            return fut
        self._appends.append((kind, body, fut))
        self._append_wake.set()
        return fut

    def submit_input(
        self, route: Route, source: str, watermark: int | None, batch: SampleBatch | None
    ) -> Appended:
        """Append one input chunk (or heartbeat) to the input log; see ``submit``."""
        return self.submit(KIND_INPUT, encode_input(route, source, watermark, batch))

    async def write_samples(self, batch: SampleBatch) -> None:
        """Spool a batch for the store only (no engine); returns once it is on disk."""
        await self.submit(KIND_SAMPLES, encode_samples(batch))

    async def write_alert_events(
        self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]] | None = None
    ) -> None:
        await self.submit(KIND_ALERTS, encode_alerts(events, on_shift))

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None:
        await self.submit(KIND_JOURNAL, encode_journal(entries))

    async def retain(self, pos: Position) -> None:
        """The engine snapshot covers the spool up to ``pos`` (see ``Spool.retain``)."""
        await asyncio.to_thread(self.spool.retain, pos)

    async def read_after(self, pos: Position | None, max_records: int = 512) -> list[Record]:
        return await asyncio.to_thread(self.spool.read_after, pos, max_records)

    async def flush(self) -> None:
        """Wait until everything spooled so far is in the store; bound it with ``asyncio.timeout``."""
        while self._appends or self._inflight or self.spool.pending_records:
            self._drained.clear()
            self._wake.set()
            await self._drained.wait()

    async def wait_until(self, available: bool) -> None:
        """Wait for the store to be (un)available as seen by the background task."""
        await (self._up if available else self._down).wait()

    def stats(self) -> SpoolStats:
        return SpoolStats(
            store_available=self._available and self._store_open,
            pending_records=self.spool.pending_records,
            pending_bytes=self.spool.pending_bytes,
            last_error=self._last_error,
            write_seconds=self._write_seconds.snapshot(),
            **self._counts,
        )

    # -- the appender: group commit ------------------------------------------------------------------

    async def _append_loop(self) -> None:
        """Everything submitted while the previous group was being written and fsync'd forms
        the next group: one write and one fsync for all of it."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._appends:
                if self._closing:
                    return
                self._append_wake.clear()
                await self._append_wake.wait()
                continue
            group, self._appends = self._appends, []
            items = [(kind, uuid.uuid4().hex, body) for kind, body, _ in group]
            self._inflight = len(group)
            try:
                results = await loop.run_in_executor(self._io, self.spool.append_many, items)
            except asyncio.CancelledError:
                for _, _, fut in group:  # stopped while the disk hangs: nobody may wait forever
                    if not fut.done():
                        fut.set_result(None)
                raise
            finally:
                self._inflight = 0
            self._counts["fsyncs"] += 1
            for (_, _, fut), res in zip(group, results, strict=True):
                value: Position | None
                if isinstance(res, StoreError):
                    self._refused(res)
                    value = None
                else:
                    self._full_logged = False
                    self._counts["spooled"] += 1
                    value = res
                if not fut.done():
                    fut.set_result(value)
            self._drained.clear()
            self._wake.set()

    def _refused(self, e: StoreError) -> None:
        self._counts["dropped_full"] += 1
        self._last_error = str(e)
        if not self._full_logged:
            log.error("%s; further refusals are counted, not logged", e)
            self._full_logged = True

    # -- the background task -----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff[0]
        todo: deque[Record] = deque()
        while not self._stop.is_set():
            try:
                if not self._store_open:
                    await self.store.open()
                    self._store_open = True
                    self._opened(None)
                if not todo:
                    self._wake.clear()
                    todo.extend(await asyncio.to_thread(self.spool.take, 512))
                    if not todo:
                        self._drained.set()
                        await self._wake.wait()
                        continue
                await self._apply_head(todo)
            except StoreUnavailable as e:
                self._opened(None)
                self._outage(e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)  # backoff, cut short by stop()
                delay = min(delay * 2, self._backoff[1])
                continue
            except StoreError as e:
                if not self._store_open:  # open() failed for good (bad URL, credentials, migration)
                    first = self._first_open is not None and not self._first_open.done()
                    self._opened(e)  # the first failure is the caller's to report (opened() raises it)
                    self._last_error = str(e)
                    log.log(
                        logging.DEBUG if first else logging.ERROR,
                        "store cannot be opened: %s; retrying in %.0f s", e, self._backoff[1],
                    )  # fmt: skip
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self._backoff[1])
                    continue
                rec = todo.popleft()
                self._counts["rejected"] += 1
                self._last_error = str(e)
                log.error(  # noqa: TRY400  (the message is the error; no traceback wanted)
                    "store refused spooled batch %s for good (%s); kept in rejected.seg", rec.batch_id, e
                )
                await asyncio.to_thread(self.spool.reject, rec)
                continue
            delay = self._backoff[0]
            self._up.set()
            if not self._available:
                self._available = True
                self._down.clear()
                log.info(
                    "store is back after %.1f s; replaying the spool (%d records pending)",
                    time.monotonic() - self._down_since,
                    self.spool.pending_records,
                )

    def _opened(self, error: StoreError | None) -> None:
        fut = self._first_open
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
                fut.exception()  # retrieved here: nobody may be waiting

    def _outage(self, e: StoreUnavailable) -> None:
        self._last_error = str(e)
        self._up.clear()
        self._down.set()
        if self._available:
            self._available = False
            self._down_since = time.monotonic()
            self._counts["outages"] += 1
            log.warning("store unavailable, spooling to %s until it is back: %s", self.spool.dir, e)

    async def _apply_head(self, todo: deque[Record]) -> None:
        """Commit the run of records at the head of ``todo`` in one store transaction and mark
        them committed in the spool; on an error nothing is popped. A StoreError that is not an
        outage is narrowed down to the one record to reject. The store's time for a committed
        run is observed in ``write_seconds``."""
        run, batches = self._sample_run(todo)
        stored = bool(batches) or not run  # a run of heartbeats alone never reaches the store
        started = time.perf_counter()
        if run:
            if len(batches) > 1:
                try:
                    done = await self.store.write_sample_batches(batches)
                except StoreUnavailable:
                    raise
                except StoreError:
                    self._commit_samples, limit = 1, self._commit_samples  # find the culprit alone
                    try:
                        run, batches = self._sample_run(todo)
                        done = await self._write_batches(batches)
                    finally:
                        self._commit_samples = limit
            else:
                done = await self._write_batches(batches)
            self._counts["committed"] += sum(done)
            self._counts["skipped"] += len(done) - sum(done)
        else:
            rec = todo[0]
            run = [rec]
            try:
                if rec.kind == KIND_ALERTS:
                    events, on_shift = decode_alerts(rec.body)
                    ok = await self.store.write_alert_events(events, rec.batch_id, on_shift)
                elif rec.kind == KIND_JOURNAL:
                    await self.store.append_journal(decode_journal(rec.body))
                    ok = True
                else:
                    raise StoreError(f"spool record {rec.batch_id} has unknown kind {rec.kind}")
            except (ValueError, KeyError, TypeError, struct.error) as e:
                raise StoreError(f"spool record {rec.batch_id} cannot be decoded: {e}") from e
            self._counts["committed" if ok else "skipped"] += 1
        if stored:
            self._write_seconds.observe(time.perf_counter() - started)
        self._counts["transactions"] += 1
        if self._after_commit is not None:
            self._after_commit(run[-1].batch_id)
        await asyncio.to_thread(self.spool.commit, run[-1], len(run))
        for _ in run:
            todo.popleft()

    async def _write_batches(self, batches: list[tuple[str, SampleBatch]]) -> list[bool]:
        if not batches:
            return []
        if len(batches) == 1:
            return [await self.store.write_samples(batches[0][1], batches[0][0])]
        return await self.store.write_sample_batches(batches)

    def _sample_run(self, todo: deque[Record]) -> tuple[list[Record], list[tuple[str, SampleBatch]]]:
        """The records at the head that only carry samples (or heartbeats, which the store does
        not keep), up to ``commit_samples`` samples; a record that cannot be decoded is raised
        as a StoreError when it is first (to be rejected) and ends the run otherwise."""
        run: list[Record] = []
        batches: list[tuple[str, SampleBatch]] = []
        total = 0
        for rec in todo:
            if rec.kind not in (KIND_SAMPLES, KIND_INPUT):
                break
            try:
                batch = _stored_batch(rec, self._tags)
            except (ValueError, KeyError, TypeError, struct.error) as e:
                if run:
                    break
                raise StoreError(f"spool record {rec.batch_id} cannot be decoded: {e}") from e
            n = len(batch) if batch is not None else 0
            if run and total + n > self._commit_samples and batches:
                break
            run.append(rec)
            if batch is not None:
                batches.append((rec.batch_id, batch))
                total += n
        return run, batches


def read_records(directory: Path) -> list[tuple[int, str, bytes]]:
    """Every record in a spool directory's segments (kind, batch id, body): for tools and tests."""
    out: list[tuple[int, str, bytes]] = []
    for path in sorted(p for p in Path(directory).glob("*.seg") if p.stem.isdigit()):
        data = path.read_bytes()
        pos = 0
        while pos + _FRAME.size <= len(data):
            magic, length, crc = _FRAME.unpack_from(data, pos)
            payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
            if magic != _MAGIC or len(payload) < length or zlib.crc32(payload) != crc:
                break
            out.append((payload[0], payload[2 : 2 + payload[1]].decode(), payload[2 + payload[1] :]))
            pos += _FRAME.size + length
    return out
