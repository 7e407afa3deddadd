"""The escalation loop: performs what the pure escalation machine decides (SPEC §6).

    pipeline --submit()--> inbox --(one loop task)--> escalation.advance, compose, flood control
        --> outbox.save(states + rows, ONE transaction) --> channels (queues, retries, counters)

Parts, one job each: ``clock`` (time, injected), ``escalation`` and ``flood`` (pure machines),
``compose`` (pure rendering of rows), ``channels`` (per-channel delivery), ``acks`` (forwarding
acknowledgements to the store), ``watch`` (acknowledgements made in the store by others), and
this loop, which owns the escalation states and the outbox writes.

Nothing here waits for or reads the sample store: a raise carries what its messages say (value,
trend, on-shift snapshot), the outbox is a local file and keeps that with each escalation, and
``start`` resumes every active escalation from the outbox alone. The journal goes out through a
``JournalSink`` (the pipeline's spool writer), which never fails on an outage.

A poison step never blocks the rest: when one alert's step cannot be planned, rendered or saved,
that escalation is quarantined (saved inactive with the error, logged once, journaled
``escalation-failed``, counted ``quarantined``) and the loop goes on with every other alert.

Overflow: the inbox holds at most ``inbox_size`` submitted batches; beyond that a batch is
dropped and counted (``dropped_events``): the alerts are still stored, their pushes are missing.
The pipeline never waits on the notifier. Channel queues defer to the outbox (see channels).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from plantpulse.alerts import Alert, AlertEvent, JournalEntry
from plantpulse.errors import StoreError
from plantpulse.notifier import acks
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.acks import AckForwarder
from plantpulse.notifier.channels import AppriseSender, Channels, ChannelStats, Sender
from plantpulse.notifier.clock import NS_PER_S, Clock, SystemClock
from plantpulse.notifier.compose import Composer, signer
from plantpulse.notifier.flood import FloodControl
from plantpulse.notifier.journal import Journal, JournalSink
from plantpulse.notifier.outbox import Ack, Change, Outbox, OutboxRow
from plantpulse.notifier.step import Book, Control, Item, Raised
from plantpulse.notifier.watch import StoreWatch
from plantpulse.people.roster import Roster
from plantpulse.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NotifierStats:
    """A snapshot for status pages and /metrics."""

    pending: int  # active escalations
    counts: dict[str, int]  # quarantined, dropped_events, unrouted, held, digests, cancelled
    channels: dict[str, ChannelStats]


class EscalationNotifier:
    """The pipeline's ``Notifier`` for a configured team; ``start``/``stop`` own its tasks."""

    def __init__(
        self,
        roster: Roster,
        outbox: Outbox,
        *,
        store: Store | None = None,
        journal: JournalSink | None = None,
        clock: Clock | None = None,
        secret: bytes | None = None,
        link_base: str | None = None,
        sender: Sender | None = None,
        queue_size: int = 256,
        workers: int = 4,
        retries: int = 4,
        backoff: float = 0.5,
        send_timeout: float = 10.0,
        poll_interval: int = 2 * NS_PER_S,
        ack_poll: int = NS_PER_S // 4,
        forward_timeout: float = 2.0,
        forward_backoff: tuple[float, float] = (0.5, 30.0),
        inbox_size: int = 10_000,
    ) -> None:
        self.roster = roster
        self.team = roster.team
        self.outbox = outbox
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._journal = Journal(journal)
        links = signer(secret, link_base, self.team.links.ttl)
        self._book = Book(roster, outbox, Composer(self.team, roster.zone.key, links), ack_poll)
        self._backoff = backoff
        self._forward_timeout = forward_timeout
        self._inbox: deque[Item] = deque()
        self._inbox_size = inbox_size
        self._wake = asyncio.Event()
        self._moved = asyncio.Event()  # set on every change that may settle ``idle``/``stop``
        self._busy = False
        self._channels = Channels(
            outbox, self.team, self.clock, sender or AppriseSender(send_timeout),
            on_unreached=self._unreached, changed=self._changed, queue_size=queue_size, workers=workers,
            retries=retries, backoff=backoff,
        )  # fmt: skip
        self._forwarder: AckForwarder | None = None
        self._watch: StoreWatch | None = None
        if store is not None:  # only these two tasks use it, never the loop
            self._forwarder = AckForwarder(outbox, store, backoff=forward_backoff, changed=self._changed)
            self._watch = StoreWatch(
                store, self.clock, interval=poll_interval, active=lambda: self._book.states, post=self.post,
                changed=self._changed,
            )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []
        self._counts = Counter[str]()

    # -- the pipeline's side ----------------------------------------------------------------

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        """Queue raises and clears for the loop; never blocks (see the overflow policy)."""
        if not events:
            return
        if len(self._inbox) >= self._inbox_size:
            self._counts["dropped_events"] += len(events)
            log.error("notifier inbox full: %d alert events not notified (they are stored)", len(events))
            return
        self._inbox.append(Raised(list(events), on_shift))
        self._wake.set()

    def post(self, alert_id: str, event: esc.Event) -> asyncio.Future[None]:
        """Feed an event (acknowledged, cleared, shelved) to one escalation; the future is done
        once a step processed it."""
        done = asyncio.get_running_loop().create_future()
        self._inbox.append(Control(alert_id, event, done))
        self._wake.set()
        return done

    # -- acknowledgements and shelves -------------------------------------------------------

    async def acknowledge(
        self, alert_id: str, by: str, comment: str | None = None, source: str = "api"
    ) -> Alert | None:
        """Record in the outbox, stop the escalation, then forward to the store (retried through
        outages). Returns the alert (as the notifier knows it if the store is unreachable), or
        None when neither knows it."""
        result = await self._ack(Ack(alert_id, by, self.clock.now(), comment, source), None)
        return None if result == "used" else result

    async def acknowledge_link(
        self, alert_id: str, person: str, nonce: str, comment: str | None, source: str
    ) -> Alert | Literal["used"] | None:
        """``acknowledge`` for a signed link: its nonce is spent in the same transaction."""
        return await self._ack(Ack(alert_id, person, self.clock.now(), comment, source), nonce)

    async def _ack(self, ack: Ack, nonce: str | None) -> Alert | Literal["used"] | None:
        async def stop(recorded: Ack) -> None:
            await asyncio.wait({self.post(ack.alert_id, esc.Acked(recorded.at, recorded.by))}, timeout=5.0)

        book, aid = self._book, ack.alert_id
        return await acks.acknowledge(
            self.outbox, ack, nonce, stop=stop, forwarder=self._forwarder,
            forward_timeout=self._forward_timeout,
            active={aid: (book.states[aid], book.info[aid])} if aid in book.states else {},
        )  # fmt: skip

    async def shelve(self, alert_id: str, by: str, until: int, reason: str) -> Alert | None:
        """Shelve in the store (journaled there) and hold notifications until ``until``."""
        if self.store is None:
            raise StoreError("shelving needs the store")
        at = self.clock.now()
        alert = await self.store.shelve(alert_id, by, at, until, reason)
        if alert is not None:
            if self._watch is not None:
                self._watch.shelved(alert_id, until)
            await asyncio.wait({self.post(alert_id, esc.Shelved(at, until))}, timeout=5.0)
        return alert

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every active escalation, the flood state and unsent rows from the outbox alone."""
        loaded = await self.outbox.load()
        broken, journal = self._book.resume(loaded, self.clock.now())
        if broken:
            await self.outbox.save(Change(states=broken))
            self._journal.later(journal)
        for ack in loaded.acks:  # made while we were down
            self._inbox.append(Control(ack.alert_id, esc.Acked(ack.at, ack.by)))
        self._channels.resume(k for p in self.team.people.values() for k in p.contacts)
        self._wake.set()  # a first step at once: overdue ticks, rows left pending by the last run
        self._spawn(self._loop(), "notifier loop")
        if self._forwarder is not None:
            self._spawn(self._forwarder.run(), "notifier ack forwarder")
        if self._watch is not None:
            self._spawn(self._watch.run(), "notifier store watch")
        log.info("notifier started: %d escalations resumed from the outbox", len(self._book.states))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self, grace: float = 5.0) -> None:
        """Process what was submitted and deliver what is queued (up to ``grace`` s), then stop.
        Whatever is left stays in the outbox and goes out after the next start."""
        self._wake.set()
        try:
            await self._until(lambda: not (self._inbox or self._busy or self._channels.inflight), grace)
        except TimeoutError:
            n = self._channels.inflight
            log.warning("notifier stopped with %d deliveries in flight (kept in the outbox)", n)
        await self.abort()

    async def abort(self) -> None:
        """Stop every task now, as a crash would (tests use it to kill mid-escalation)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._channels.stop()

    async def idle(self, within: float = 10.0, *, delivered: bool = True, forwarded: bool = False) -> None:
        """Wait until everything due at the clock's current time is processed and (unless
        ``delivered`` is False) delivered, and with ``forwarded`` every acknowledgement is in the
        store: tests synchronise on this instead of sleeping."""

        def settled() -> bool:
            due, now = self._book.due(), self.clock.now()
            return (
                not self._inbox
                and not self._busy
                and not (delivered and self._channels.inflight)
                and not self._wake.is_set()
                and (due is None or due > now)
                and (self._watch is None or self._watch.settled(now))
                and not (forwarded and self._forwarder is not None and not self._forwarder.drained)
            )

        await self._until(settled, within)

    async def _until(self, done: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not done():
                self._moved.clear()
                await self._moved.wait()

    @property
    def pending(self) -> dict[str, esc.EscalationState]:
        """Active escalations by alert id (read-only view for status pages and tests)."""
        return dict(self._book.states)

    def stats(self) -> NotifierStats:
        counts = Counter(self._counts) + self._book.counts
        return NotifierStats(len(self._book.states), dict(counts), self._channels.stats())

    @property
    def counts(self) -> dict[str, int]:
        """``stats()`` in one flat mapping: loop counters and channel counters summed."""
        st = self.stats()
        out = Counter(st.counts)
        for ch in st.channels.values():
            out.update({k: v for k, v in asdict(ch).items() if k != "queued"})
        return {k: v for k, v in out.items() if v}

    # -- the loop -----------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._channels.backlog:
            self._wake.set()
        self._moved.set()

    def _unreached(self, row: OutboxRow) -> None:
        """Every channel of a message failed: the next step is due at once."""
        now = self.clock.now()
        detail = {"step": row.step, "recipient": row.recipient, "channel": row.channel, "outbox_id": row.id}
        self._inbox.append(Control(row.alert_id, esc.DeliveryFailed(now, row.step, row.recipient)))
        self._journal.later([JournalEntry(row.alert_id, now, "delivery-failed", "notifier", detail)])
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            due = self._book.due()
            if not self._inbox and (due is None or due > self.clock.now()):
                waits: list[asyncio.Task[Any]] = [asyncio.create_task(self._wake.wait())]
                if due is not None:
                    waits.append(asyncio.create_task(self.clock.sleep_until(due)))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
            self._wake.clear()
            self._busy = True
            try:
                await self._step()
            except Exception:  # the local outbox failed as a whole (locked, disk full): retry
                log.exception("notifier step failed; retrying")
                await asyncio.sleep(self._backoff)  # backoff before retrying, not synchronisation
            finally:
                self._busy = False
                self._moved.set()

    async def _step(self) -> None:
        items = list(self._inbox)
        self._inbox.clear()
        flood_before = self._book.flood.dump()
        try:
            out = await self._book.step(items, self.clock.now(), self._channels.reserve)
        except BaseException:
            self._inbox.extendleft(reversed(items))  # nothing was saved: redo the whole step
            self._book.flood = FloodControl.load(flood_before)
            raise
        self._channels.cancel(out.cancelled)
        self._channels.accept(out.rows)
        for item in items:
            if isinstance(item, Control) and item.done is not None and not item.done.done():
                item.done.set_result(None)
        if out.forward and self._forwarder is not None:
            self._forwarder.wake()
        await self._channels.dispatch()
        await self._journal.write(out.journal)


__all__ = ["EscalationNotifier", "NotifierStats"]
