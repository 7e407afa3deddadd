"""Per-channel delivery: one bounded queue and a few workers per channel kind (wecom, email, ...),
retries with exponential backoff, one delivery record per attempt, counters per channel.

Shaped like Prometheus' notifier send loop (one queue per destination, every outcome counted),
with one difference in the overflow policy, because these rows are durable: a row that does not
fit its channel's queue is NOT dropped. It stays ``pending`` in the outbox (counted ``deferred``)
and is claimed, oldest first, as the queue drains; a slow provider delays its own channel only.
``dropped`` counts rows given up without an attempt (the person has no such contact any more).

A message (one person, one step) may go over several channels; when its last row finished and
none delivered it, ``on_unreached`` tells the escalation loop, which escalates at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import apprise

from plantpulse.notifier.clock import Clock
from plantpulse.notifier.outbox import Delivery, Outbox, OutboxRow
from plantpulse.people.schema import TeamConfig

log = logging.getLogger(__name__)

_COUNTERS = ("sent", "failed", "dropped", "deferred", "attempts_failed")


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A snapshot of one channel's delivery (what /metrics exports)."""

    queued: int  # rows in the queue or being sent now
    sent: int
    failed: int  # rows given up after ``retries`` attempts
    dropped: int  # rows given up unsent: no such contact any more
    deferred: int  # rows that waited in the outbox because the queue was full
    attempts_failed: int  # every failed attempt, retried or not


class Sender(Protocol):
    """One provider call for one row; errors come back as (False, text), never raised."""

    async def send(self, url: str, row: OutboxRow) -> tuple[bool, str]: ...


class AppriseSender:
    """Apprise, one client per URL, each call bounded by ``timeout`` seconds. ``notify`` is the
    same call for a message that is not an outbox row (approval notices)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[str, apprise.Apprise] = {}

    async def send(self, url: str, row: OutboxRow) -> tuple[bool, str]:
        return await self.notify(url, row.title, row.body, row.notify_type)

    async def notify(self, url: str, title: str, body: str, notify_type: str) -> tuple[bool, str]:
        """One provider call; errors come back as (False, text), never raised."""
        ap = self._clients.get(url)
        if ap is None:
            ap = apprise.Apprise()
            if not ap.add(url):
                return False, "not a valid Apprise URL"
            self._clients[url] = ap
        try:
            async with asyncio.timeout(self.timeout):
                result = await ap.async_notify(body=body, title=title, notify_type=notify_type)
        except TimeoutError:
            return False, f"timeout after {self.timeout:g} s"
        except Exception as e:  # apprise plugins raise anything; the attempt is recorded, not fatal
            return False, f"{type(e).__name__}: {e}"
        ok = bool(result)
        texts: list[str] = []
        with contextlib.suppress(Exception):
            texts = [str(getattr(e, "message", e)) for e in result.logs()]
        status = getattr(getattr(result, "status", None), "name", "SUCCESS" if ok else "FAILURE")
        return ok, "; ".join([str(status), *texts])[:2000]


class Channels:
    """Queues, workers and counters of every channel; ``changed`` is called after each row."""

    def __init__(
        self,
        outbox: Outbox,
        team: TeamConfig,
        clock: Clock,
        sender: Sender,
        *,
        on_unreached: Callable[[OutboxRow], None],
        changed: Callable[[], None],
        queue_size: int = 256,
        workers: int = 4,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.team = team
        self.clock = clock
        self.sender = sender
        self._on_unreached = on_unreached
        self._changed = changed
        self._queue_size = queue_size
        self._workers = workers
        self._retries = max(1, retries)
        self._backoff = backoff
        self._queues: dict[str, asyncio.Queue[OutboxRow]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._backlog: set[str] = set()
        self._cancelled: set[int] = set()
        self._messages: dict[str, list[int]] = {}  # msg_key -> [open rows, delivered rows]
        self._queued: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.inflight = 0

    def resume(self, channels: Iterable[str]) -> None:
        """Rows a previous run left pending may wait in the outbox for these channels."""
        self._backlog.update(channels)

    @property
    def backlog(self) -> bool:
        return bool(self._backlog)

    def stats(self) -> dict[str, ChannelStats]:
        return {
            ch: ChannelStats(queued=self._queued.get(ch, 0), **c) for ch, c in sorted(self._counts.items())
        }

    def _count(self, channel: str) -> dict[str, int]:
        c = self._counts.get(channel)
        if c is None:
            c = self._counts[channel] = dict.fromkeys(_COUNTERS, 0)
        return c

    def reserve(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Rows that fit their channel's queue stay ``sending`` (saved already claimed: one
        transaction fewer on the hot path); the rest are saved ``pending`` for ``dispatch``."""
        room: dict[str, int] = {}
        out = []
        for r in rows:
            if r.status != "sending":
                out.append(r)
                continue
            free = room.get(r.channel)
            if free is None:
                q = self._queues.get(r.channel)
                free = self._queue_size - (q.qsize() if q is not None else 0)
                if r.channel in self._backlog:
                    free = 0  # older rows of this channel wait in the outbox: keep the order
            if free > 0:
                room[r.channel] = free - 1
                out.append(r)
            else:
                room[r.channel] = 0
                self._backlog.add(r.channel)
                self._count(r.channel)["deferred"] += 1
                out.append(replace(r, status="pending"))
        return out

    def accept(self, rows: Sequence[OutboxRow]) -> None:
        """Queue the saved rows that ``reserve`` kept ``sending``."""
        for row in rows:
            if row.status == "sending":
                self._put(row)

    def cancel(self, row_ids: Iterable[int]) -> None:
        """These rows were cancelled in the outbox (acknowledged): skip them if still queued."""
        self._cancelled.update(row_ids)

    async def dispatch(self) -> None:
        """Claim rows waiting in the outbox for channels whose queue has room."""
        for channel in sorted(self._backlog):
            free = self._queue_size - (q.qsize() if (q := self._queues.get(channel)) else 0)
            if free <= 0:
                continue
            rows = await self.outbox.claim(channel, free)
            for row in rows:
                self._put(row)
            if len(rows) < free:
                self._backlog.discard(channel)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()
        self._queued.clear()
        self.inflight = 0

    # -- workers --------------------------------------------------------------------------------

    def _put(self, row: OutboxRow) -> None:
        self._messages.setdefault(row.msg_key, [0, 0])[0] += 1
        self._queue(row.channel).put_nowait(row)
        self._queued[row.channel] = self._queued.get(row.channel, 0) + 1
        self.inflight += 1

    def _queue(self, channel: str) -> asyncio.Queue[OutboxRow]:
        q = self._queues.get(channel)
        if q is None:
            q = self._queues[channel] = asyncio.Queue(self._queue_size)
            self._count(channel)
            for i in range(self._workers):
                self._tasks.append(asyncio.create_task(self._work(q), name=f"notifier {channel} #{i}"))
        return q

    async def _work(self, q: asyncio.Queue[OutboxRow]) -> None:
        while True:
            row = await q.get()
            try:
                if row.id in self._cancelled:
                    self._cancelled.discard(row.id)
                    self._finish(row, delivered=True)
                else:
                    await self._deliver(row)
            except Exception:
                log.exception("notifier: delivery of outbox row %d failed unexpectedly", row.id)
            finally:
                q.task_done()
                self._queued[row.channel] -= 1
                self.inflight -= 1
                self._changed()

    def _url(self, person: str, channel: str) -> str | None:
        for kind, url in self.team.contacts(person, (channel,)):
            if kind == channel:
                return url
        return None

    async def _deliver(self, row: OutboxRow) -> None:
        counts = self._count(row.channel)
        url = self._url(row.recipient, row.channel)
        if url is None:
            response = f"{row.recipient} has no contact {row.channel!r} any more"
            await self._record(row, row.attempts + 1, False, response, "failed")
            counts["dropped"] += 1
            log.warning("notifier: %s to %s dropped: %s", row.kind, row.recipient, response)
            self._unreached(row)
            return
        delay = self._backoff
        first = row.attempts + 1
        for attempt in range(first, first + self._retries):
            if row.id in self._cancelled:
                self._cancelled.discard(row.id)
                self._finish(row, delivered=True)
                return
            ok, response = await self.sender.send(url, row)
            last = attempt == first + self._retries - 1
            await self._record(row, attempt, ok, response, "sent" if ok else ("failed" if last else None))
            if ok:
                counts["sent"] += 1
                self._finish(row, delivered=True)
                return
            counts["attempts_failed"] += 1
            if not last:
                await asyncio.sleep(delay)  # retry backoff, not synchronisation
                delay *= 2
        counts["failed"] += 1
        log.warning("notifier: %s to %s over %s failed after retries", row.kind, row.recipient, row.channel)
        self._unreached(row)

    async def _record(
        self, row: OutboxRow, attempt: int, ok: bool, response: str, final: Literal["sent", "failed"] | None
    ) -> None:
        status: Literal["ok", "error"] = "ok" if ok else "error"
        delivery = Delivery(row.id, attempt, self.clock.now(), row.channel, row.recipient, status, response)
        await self.outbox.record(delivery, final)

    def _unreached(self, row: OutboxRow) -> None:
        if self._finish(row, delivered=False) and row.alert_id and row.kind != "clear":
            self._on_unreached(row)

    def _finish(self, row: OutboxRow, *, delivered: bool) -> bool:
        """Count a finished row of a message; True when the message's last row finished and
        none of its channels delivered it (the person was not reached)."""
        entry = self._messages.get(row.msg_key)
        if entry is None:
            return not delivered
        entry[0] -= 1
        if delivered:
            entry[1] += 1
        if entry[0] > 0:
            return False
        del self._messages[row.msg_key]
        return entry[1] == 0


__all__ = ["AppriseSender", "ChannelStats", "Channels", "Sender"]
