"""Durable local spool and the ``SpoolWriter`` the stream pipeline writes through.

Every write (samples, alert events, journal entries) is first appended to an append-only,
fsync'd segment file as a framed record carrying a fresh batch id; a background task then
commits the records to the store in order and only afterwards advances the committed
position. So:

* the pipeline never waits for the database and never sees an outage: while the store is
  unavailable records pile up in the spool and the task retries with backoff;
* a crash anywhere loses nothing that was acknowledged, and a crash between the store's
  commit and the position update replays a batch whose id the store already holds: the
  store skips it (``write_samples`` returns False), so every row lands exactly once.

Layout of ``dir``: ``NNNNNNNNNNNN.seg`` segment files, a ``committed`` file (``segment offset``,
replaced atomically, not fsync'd: a lost update only means skipped replays), ``rejected.seg``
(records the store refused for good, kept for inspection) and a ``LOCK`` file held with flock.

Record frame (little-endian): magic ``PPS1``, u32 payload length, u32 crc32 of the payload;
payload: u8 kind, u8 batch-id length, batch id, body. A torn tail (crash mid-append) fails the
length or crc check and is cut off at open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.config import SpoolConfig
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["KIND_ALERTS", "KIND_JOURNAL", "KIND_SAMPLES", "Spool", "SpoolFull", "SpoolStats", "SpoolWriter"]

KIND_SAMPLES, KIND_ALERTS, KIND_JOURNAL = 1, 2, 3
_MAGIC = b"PPS1"
_FRAME = struct.Struct("<4sII")
_MAX_PAYLOAD = 1 << 31


class SpoolFull(StoreError):
    """The spool reached its size bound while the store is unavailable; the record was refused."""


@dataclass(frozen=True, slots=True)
class Record:
    batch_id: str
    kind: int
    body: bytes
    segment: int
    end: int  # offset just past this record in ``segment``: the committed position once applied


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


class Spool:
    """Append-only framed records in segment files, bounded by ``max_bytes`` of pending data.

    Blocking file I/O; thread-safe, so the writer runs it in worker threads. Records of kind
    samples are refused beyond ``max_bytes``; alerts and journal entries may use a further
    ``max_bytes // 16`` so that a spool full of samples still keeps the alerts.
    """

    def __init__(
        self, directory: Path, max_bytes: int = 1 << 30, segment_bytes: int = 16 << 20, fsync: bool = True
    ) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}  # segment number -> valid bytes
        self._committed = (1, 0)
        self._read = (1, 0)
        self._pending_records = 0
        self._out: IO[bytes] | None = None
        self._lockfile: IO[bytes] | None = None

    # -- open / close ----------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, cut a torn tail, find the committed position and what is pending."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lockfile = (self.dir / "LOCK").open("ab")
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lockfile.close()
            raise StoreError(f"spool {self.dir} is in use by another process") from None
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
        last = max(self._sizes)
        self._out = (self.dir / _seg_name(last)).open("ab")

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

    def _load_committed(self) -> tuple[int, int]:
        try:
            seg, off = (self.dir / "committed").read_text().split()
            return int(seg), int(off)
        except (FileNotFoundError, ValueError):
            return (1, 0)

    def close(self) -> None:
        with self._lock:
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

    # -- append / read / commit ------------------------------------------------------------------

    def append(self, kind: int, batch_id: str, body: bytes) -> None:
        """Append and (by default) fsync one record; raises SpoolFull beyond the bound."""
        bid = batch_id.encode()
        payload = b"".join((bytes((kind, len(bid))), bid, body))
        frame = _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._out is None:
                raise StoreError(f"spool {self.dir} is not open")
            limit = self.max_bytes if kind == KIND_SAMPLES else self.max_bytes + self.max_bytes // 16
            if self.pending_bytes + len(frame) > limit:
                raise SpoolFull(
                    f"spool {self.dir} is full ({self.pending_bytes} of {self.max_bytes} bytes pending "
                    f"while the store is unavailable): record {batch_id} refused"
                )
            last = max(self._sizes)
            if self._sizes[last] >= self.segment_bytes:
                self._out.close()
                last += 1
                self._sizes[last] = 0
                self._out = (self.dir / _seg_name(last)).open("ab")
            self._out.write(frame)
            self._out.flush()
            if self.fsync:
                os.fsync(self._out.fileno())
            self._sizes[last] += len(frame)
            self._pending_records += 1

    def next(self) -> Record | None:
        """The record after the last one handed out, or None when everything was handed out."""
        with self._lock:
            seg, off = self._read
            while off >= self._sizes.get(seg, 0):
                if seg >= max(self._sizes):
                    return None
                seg, off = seg + 1, 0
            with (self.dir / _seg_name(seg)).open("rb") as f:
                f.seek(off)
                _, length, _ = _FRAME.unpack(f.read(_FRAME.size))
                payload = f.read(length)
            kind, idlen = payload[0], payload[1]
            end = off + _FRAME.size + length
            self._read = (seg, end)
            return Record(payload[2 : 2 + idlen].decode(), kind, payload[2 + idlen :], seg, end)

    def commit(self, rec: Record) -> None:
        """Record that ``rec`` (and everything before it) is in the store; drop spent segments."""
        with self._lock:
            self._committed = (rec.segment, rec.end)
            self._pending_records -= 1
            tmp = self.dir / "committed.tmp"
            tmp.write_text(f"{rec.segment} {rec.end}\n")
            os.replace(tmp, self.dir / "committed")
            for n in [n for n in self._sizes if n < rec.segment]:
                del self._sizes[n]
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / _seg_name(n)).unlink()

    def reject(self, rec: Record) -> None:
        """Keep a record the store refused for good in ``rejected.seg``, then move past it."""
        payload = b"".join((bytes((rec.kind, len(rec.batch_id))), rec.batch_id.encode(), rec.body))
        with (self.dir / "rejected.seg").open("ab") as f:
            f.write(_FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload)
        self.commit(rec)


# -- record bodies ---------------------------------------------------------------------------------


def encode_samples(batch: SampleBatch) -> bytes:
    """Tag names travel with the batch: registry ids are process-local and the replay may run
    in another process. Only the names the batch uses are written."""
    reg = batch.tags
    used = np.flatnonzero(np.bincount(batch.tag, minlength=len(reg))) if len(batch) else np.empty(0, np.int64)
    remap = np.zeros(max(len(reg), 1), dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    names = [reg.name(int(i)).encode() for i in used]
    parts = [struct.pack("<I", len(names))]
    for name in names:
        parts += [struct.pack("<H", len(name)), name]
    parts += [
        struct.pack("<I", len(batch)),
        batch.ts.astype("<i8").tobytes(),
        remap[batch.tag].astype("<i4").tobytes(),
        batch.value.astype("<f8").tobytes(),
        batch.quality.astype(np.uint8).tobytes(),
    ]
    return b"".join(parts)


def decode_samples(body: bytes, tags: TagRegistry) -> SampleBatch:
    (ntags,) = struct.unpack_from("<I", body, 0)
    pos, names = 4, []
    for _ in range(ntags):
        (ln,) = struct.unpack_from("<H", body, pos)
        names.append(body[pos + 2 : pos + 2 + ln].decode())
        pos += 2 + ln
    (n,) = struct.unpack_from("<I", body, pos)
    pos += 4
    ts = np.frombuffer(body, "<i8", n, pos).astype(np.int64)
    local = np.frombuffer(body, "<i4", n, pos + 8 * n)
    value = np.frombuffer(body, "<f8", n, pos + 12 * n).astype(np.float64)
    quality = np.frombuffer(body, np.uint8, n, pos + 20 * n).copy()
    ids = tags.ids(names) if names else np.empty(0, np.int32)
    return SampleBatch(ts, ids[local] if n else np.empty(0, np.int32), value, quality, tags)


def encode_alerts(events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]] | None) -> bytes:
    return json.dumps({"events": [asdict(e) for e in events], "on_shift": on_shift}).encode()


def decode_alerts(body: bytes) -> tuple[list[AlertEvent], dict[str, dict[str, list[str]]] | None]:
    doc = json.loads(body)
    return [AlertEvent.from_dict(e) for e in doc["events"]], doc["on_shift"]


def encode_journal(entries: Sequence[JournalEntry]) -> bytes:
    return json.dumps([asdict(e) for e in entries]).encode()


def decode_journal(body: bytes) -> list[JournalEntry]:
    return [JournalEntry(**e) for e in json.loads(body)]


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
    dropped_full: int  # records refused because the spool was full
    rejected: int  # records the store refused for good (kept in rejected.seg)
    outages: int
    last_error: str | None


class SpoolWriter:
    """What the pipeline writes through: ``write_*`` spool and return at once, never raising on
    an outage; a background task commits to the store in order, retrying with backoff.

    ``await start()`` opens the spool (recovering what a previous run left) and starts the
    task, which also opens the store unless ``open_store=False``; ``await stop()`` drains for
    at most ``drain_timeout`` s, stops the task and closes the spool (and the store if it opened
    it). Whatever is not committed by then stays on disk for the next start.
    """

    def __init__(
        self,
        store: Store,
        config: SpoolConfig | None = None,
        *,
        open_store: bool = True,
        backoff: tuple[float, float] = (0.2, 30.0),
        after_commit: Callable[[str], None] | None = None,
    ) -> None:
        cfg = config or SpoolConfig()
        if cfg.dir is None:
            raise ValueError("SpoolWriter needs a spool directory (StoreConfig fills it in from the URL)")
        self.store = store
        self.spool = Spool(cfg.dir, cfg.max_bytes, cfg.segment_bytes, cfg.fsync)
        self._open_store = open_store
        self._store_open = not open_store
        self._backoff = backoff
        self._after_commit = after_commit  # test hook: a crash here is the commit/bookkeeping gap
        self._tags = TagRegistry()  # names of replayed batches are interned here
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._available = True
        self._down_since = 0.0
        self._up = asyncio.Event()  # set while the store takes writes
        self._down = asyncio.Event()  # set while it does not
        self._counts = dict.fromkeys(
            ("spooled", "committed", "skipped", "dropped_full", "rejected", "outages"), 0
        )
        self._full_logged = False
        self._last_error: str | None = None

    async def __aenter__(self) -> SpoolWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self.spool.open)
        if self.spool.pending_records:
            log.info(
                "spool %s: %d records left by a previous run will be replayed",
                self.spool.dir,
                self.spool.pending_records,
            )
        self._task = asyncio.create_task(self._run(), name="plantpulse-spool-writer")

    async def stop(self, drain_timeout: float = 10.0) -> None:
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
        self.spool.close()
        if self._open_store and self._store_open:
            await self.store.close()
            self._store_open = False

    # -- the pipeline's side -----------------------------------------------------------------------

    async def write_samples(self, batch: SampleBatch) -> None:
        """Spool a batch and return; only a full spool refuses it (counted in ``dropped_full``,
        logged once per episode), and even then nothing is raised."""
        await self._append(KIND_SAMPLES, encode_samples(batch))

    async def write_alert_events(
        self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]] | None = None
    ) -> None:
        await self._append(KIND_ALERTS, encode_alerts(events, on_shift))

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None:
        await self._append(KIND_JOURNAL, encode_journal(entries))

    async def _append(self, kind: int, body: bytes) -> None:
        try:
            await asyncio.to_thread(self.spool.append, kind, uuid.uuid4().hex, body)
        except SpoolFull as e:
            self._counts["dropped_full"] += 1
            self._last_error = str(e)
            if not self._full_logged:
                log.error("%s; further refusals are counted, not logged", e)  # noqa: TRY400
                self._full_logged = True
            return
        self._full_logged = False
        self._counts["spooled"] += 1
        self._drained.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything spooled so far is in the store; bound it with ``asyncio.timeout``."""
        while self.spool.pending_records:
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
            **self._counts,
        )

    # -- the background task -----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff[0]
        current: Record | None = None
        while not self._stop.is_set():
            try:
                if not self._store_open:
                    await self.store.open()
                    self._store_open = True
                if current is None:
                    self._wake.clear()
                    current = await asyncio.to_thread(self.spool.next)
                    if current is None:
                        self._drained.set()
                        await self._wake.wait()
                        continue
                await self._apply(current)
            except StoreUnavailable as e:
                self._outage(e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)  # backoff, cut short by stop()
                delay = min(delay * 2, self._backoff[1])
                continue
            except StoreError as e:
                if current is None:  # open() failed for good (bad URL, migration error)
                    self._last_error = str(e)
                    log.error("store cannot be opened: %s; retrying in %.0f s", e, self._backoff[1])  # noqa: TRY400
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self._backoff[1])
                    continue
                self._counts["rejected"] += 1
                self._last_error = str(e)
                log.error(  # noqa: TRY400  (the message is the error; no traceback wanted)
                    "store refused spooled batch %s for good (%s); kept in rejected.seg", current.batch_id, e
                )
                await asyncio.to_thread(self.spool.reject, current)
                current = None
                continue
            if self._after_commit is not None:
                self._after_commit(current.batch_id)
            await asyncio.to_thread(self.spool.commit, current)
            current = None
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

    def _outage(self, e: StoreUnavailable) -> None:
        self._last_error = str(e)
        self._up.clear()
        self._down.set()
        if self._available:
            self._available = False
            self._down_since = time.monotonic()
            self._counts["outages"] += 1
            log.warning("store unavailable, spooling to %s until it is back: %s", self.spool.dir, e)

    async def _apply(self, rec: Record) -> None:
        try:
            await self._apply_record(rec)
        except (ValueError, KeyError, TypeError, struct.error) as e:  # a record we cannot decode
            raise StoreError(f"spool record {rec.batch_id} cannot be decoded: {e}") from e

    async def _apply_record(self, rec: Record) -> None:
        if rec.kind == KIND_SAMPLES:
            done = await self.store.write_samples(decode_samples(rec.body, self._tags), rec.batch_id)
        elif rec.kind == KIND_ALERTS:
            events, on_shift = decode_alerts(rec.body)
            done = await self.store.write_alert_events(events, rec.batch_id, on_shift)
        elif rec.kind == KIND_JOURNAL:
            await self.store.append_journal(decode_journal(rec.body))
            done = True
        else:
            raise StoreError(f"spool record {rec.batch_id} has unknown kind {rec.kind}")
        self._counts["committed" if done else "skipped"] += 1


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
