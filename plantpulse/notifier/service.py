"""The escalation notifier: performs what the pure escalation machine decides (SPEC §6).

    pipeline --submit()--> inbox --(one loop task)--> escalation.advance / flood control
        --> outbox.save(states + rows, ONE transaction) --> per-channel queues --> apprise

One loop task owns all state: it drains the inbox (raises, clears, acknowledgements, shelves,
failed deliveries), ticks every escalation whose ``next_due`` has come (an injected ``Clock``,
so tests step time instead of sleeping), renders each ``Send`` per person (language, signed
acknowledge link) and saves the new states with their outbox rows in one transaction: a step
is "sent" once it is in the outbox, so a restart resumes from the outbox store and never sends
a step twice. Delivery workers (``workers`` per channel kind: wecom, email, ...) hand rows to
apprise, retry with exponential backoff, and store one delivery record per attempt. A message
whose every channel failed becomes ``DeliveryFailed`` and the next step is due at once.

Acknowledging from any path stops the escalation: ``acknowledge()`` (API, links) feeds ``Acked``
directly; acknowledgements written by others (``plantpulse ack``, another process) are noticed
by polling the store for the active alerts every ``poll_interval``, which also picks up shelves
and clears the notifier missed.

Overflow policy (bounded everywhere, every case counted in ``counts``):
- the inbox holds at most ``inbox_size`` submitted batches; beyond that a batch is dropped and
  counted (``dropped_events``), logged as an error: the alerts are still stored, only their
  pushes are missing. The pipeline never waits on the notifier.
- a channel's delivery queue holds at most ``queue_size`` rows. Rows that do not fit are NOT
  dropped: they stay ``pending`` in the durable outbox (``deferred``) and are claimed as the
  queue drains, oldest first. A slow provider delays its own channel only.

Journal (Store.append_journal, actor ``notifier``): ``notified`` (raise, repeat, clear notes),
``escalated``, ``delivery-failed``; one entry per alert and action per loop step, the
recipients in ``detail``. Acknowledgements and shelves are journaled by the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import apprise

from plantpulse.alerts import Alert, AlertEvent, JournalAction, JournalEntry, Trend
from plantpulse.errors import StoreError
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.flood import Deliver, FloodControl
from plantpulse.notifier.links import link, new_nonce, sign
from plantpulse.notifier.messages import AlertMessage, render, render_digest
from plantpulse.notifier.messages import trend as summarize
from plantpulse.notifier.outbox import Change, Delivery, Outbox, OutboxRow
from plantpulse.people.roster import Roster
from plantpulse.store.base import Store
from plantpulse.timefmt import NS_PER_MS

log = logging.getLogger(__name__)

NS_PER_S = 10**9


# -- clocks ---------------------------------------------------------------------------------------


class Clock(Protocol):
    """Wall time in UTC ns and a way to wait for an instant; injected so tests step time."""

    def now(self) -> int: ...

    async def sleep_until(self, at: int) -> None: ...


class SystemClock:
    def now(self) -> int:
        import time

        return time.time_ns()

    async def sleep_until(self, at: int) -> None:
        delay = (at - self.now()) / NS_PER_S
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when told (``set``/``advance``), waking exactly the sleepers due.

    The test double of SystemClock, shipped with it: escalation timelines are tested by stepping
    this clock, never by sleeping."""

    def __init__(self, start: int) -> None:
        self._now = start
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> int:
        return self._now

    def set(self, at: int) -> None:
        if at < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = at
        while self._sleepers and self._sleepers[0][0] <= at:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, ns: int) -> None:
        self.set(self._now + ns)

    async def sleep_until(self, at: int) -> None:
        if at <= self._now:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (at, self._seq, fut))
        await fut


# -- the service ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Info:
    """What a message says about its alert (from the raise event, or the store after a restart)."""

    rule: str
    tag: str
    asset: str
    severity: str
    message: str
    value: float
    raised_at: int
    cleared_at: int | None = None
    on_shift: dict[str, list[str]] = field(default_factory=dict)
    trend: Trend | None = None

    @classmethod
    def of(
        cls,
        a: Alert | AlertEvent,
        on_shift: Mapping[str, list[str]] | None = None,
        trend: Trend | None = None,
    ) -> _Info:
        shift = dict(on_shift or (a.on_shift if isinstance(a, Alert) else {}))
        cleared = a.cleared_at if isinstance(a, Alert) else (a.at if a.kind == "cleared" else None)
        return cls(a.rule, a.tag, a.asset, a.severity, a.message, a.value, a.raised_at, cleared, shift, trend)


@dataclass(frozen=True, slots=True)
class _Failed:
    alert_id: str
    step: int
    recipient: str
    at: int
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Control:
    alert_id: str
    event: esc.Event


_Item = tuple[Sequence[AlertEvent], Mapping[str, Mapping[str, list[str]]]] | _Failed | _Control


def _notify_type(severity: str, kind: str) -> str:
    if kind == "clear":
        return "success"
    return "failure" if severity in ("high", "critical") else "warning"


def _active(s: esc.EscalationState) -> bool:
    return s.acked_at is None and s.stopped is None


class EscalationNotifier:
    """The pipeline's ``Notifier`` for a configured team; ``start``/``stop`` own its tasks."""

    def __init__(
        self,
        roster: Roster,
        outbox: Outbox,
        store: Store,
        *,
        clock: Clock | None = None,
        secret: bytes | None = None,
        link_base: str | None = None,
        queue_size: int = 256,
        workers: int = 4,
        retries: int = 4,
        backoff: float = 0.5,
        send_timeout: float = 10.0,
        poll_interval: int = 2 * NS_PER_S,
        inbox_size: int = 10_000,
    ) -> None:
        self.roster = roster
        self.team = roster.team
        self.timezone = roster.zone.key
        self.outbox = outbox
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._secret = secret
        self._link_base = link_base
        self._queue_size = queue_size
        self._workers_per_channel = workers
        self._retries = max(1, retries)
        self._backoff = backoff
        self._send_timeout = send_timeout
        self._poll_interval = poll_interval
        self._inbox: deque[_Item] = deque()
        self._inbox_size = inbox_size
        self._wake = asyncio.Event()
        self._settled = asyncio.Condition()
        self._states: dict[str, esc.EscalationState] = {}
        self._info: dict[str, _Info] = {}
        self._shelf_seen: dict[str, int | None] = {}
        fc = self.team.flood
        self._flood = FloodControl(fc.threshold, fc.window, fc.digest_every)
        self._queues: dict[str, asyncio.Queue[OutboxRow]] = {}
        self._backlog: set[str] = set()
        self._cancelled: set[int] = set()
        self._messages: dict[str, list[int]] = {}  # msg_key -> [open rows, delivered rows]
        self._inflight = 0
        self._busy = False
        self._next_poll: int | None = None
        self._journal_last: dict[tuple[str, str], int] = {}
        self._apprise: dict[str, apprise.Apprise] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.counts = Counter[str]()

    # -- the pipeline's side ----------------------------------------------------------------

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        """Queue raises and clears for the loop; never blocks (see the overflow policy)."""
        if not events:
            return
        if len(self._inbox) >= self._inbox_size:
            self.counts["dropped_events"] += len(events)
            log.error("notifier inbox full: %d alert events not notified (they are stored)", len(events))
            return
        self._inbox.append((list(events), on_shift))
        self._wake.set()

    async def acknowledge(
        self, alert_id: str, by: str, comment: str | None = None, source: str = "api"
    ) -> Alert | None:
        """Acknowledge in the store (journaled there) and stop the escalation at once."""
        at = self.clock.now()
        alert = await self.store.acknowledge(alert_id, by, at, comment, source=source)
        if alert is not None and alert.acked_at is not None:
            self._control(alert_id, esc.Acked(alert.acked_at, alert.acked_by or by))
        return alert

    async def shelve(self, alert_id: str, by: str, until: int, reason: str) -> Alert | None:
        """Shelve in the store (journaled there) and hold notifications until ``until``."""
        at = self.clock.now()
        alert = await self.store.shelve(alert_id, by, at, until, reason)
        if alert is not None:
            self._shelf_seen[alert_id] = until
            self._control(alert_id, esc.Shelved(at, until))
        return alert

    def _control(self, alert_id: str, event: esc.Event) -> None:
        self._inbox.append(_Control(alert_id, event))
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume from the outbox (open already): active escalations, flood state, unsent rows."""
        loaded = await self.outbox.load()
        for aid, data in loaded.states.items():
            self._states[aid] = esc.load(data)
            try:
                alert = await self.store.alert(aid)
            except StoreError as e:  # messages then lack the alert's details; escalation goes on
                log.warning("notifier: alert %s not readable from the store: %s", aid, e)
                continue
            if alert is not None:
                self._info[aid] = _Info.of(alert)
                self._shelf_seen[aid] = alert.shelved_until
        if loaded.flood is not None:
            self._flood = FloodControl.load(loaded.flood)
        self._backlog = {k for p in self.team.people.values() for k in p.contacts}
        self._next_poll = self.clock.now() + self._poll_interval
        self._wake.set()  # a first step at once: overdue ticks, rows left pending by the last run
        self._loop_task = asyncio.create_task(self._loop(), name="notifier loop")
        log.info("notifier started: %d escalations resumed", len(self._states))

    async def stop(self, grace: float = 5.0) -> None:
        """Process what was submitted and deliver what is queued (up to ``grace`` s), then stop.
        Whatever is left stays in the outbox and goes out after the next start."""
        self._wake.set()
        try:
            async with asyncio.timeout(grace), self._settled:
                await self._settled.wait_for(lambda: not (self._inbox or self._busy or self._inflight))
        except TimeoutError:
            log.warning("notifier stopped with %d deliveries in flight (kept in the outbox)", self._inflight)
        await self.abort()

    async def abort(self) -> None:
        """Stop every task now, as a crash would (tests use it to kill mid-escalation)."""
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._loop_task = None

    async def idle(self, within: float = 10.0, *, delivered: bool = True) -> None:
        """Wait until everything due at the clock's current time is processed and (unless
        ``delivered`` is False) delivered: tests synchronise on this instead of sleeping."""

        def settled() -> bool:
            due = self._due()
            return (
                not self._inbox
                and not self._busy
                and not (delivered and self._inflight)
                and not self._wake.is_set()
                and (due is None or due > self.clock.now())
            )

        async with asyncio.timeout(within), self._settled:
            await self._settled.wait_for(settled)

    @property
    def pending(self) -> dict[str, esc.EscalationState]:
        """Active escalations by alert id (read-only view for status pages and tests)."""
        return dict(self._states)

    # -- the loop -----------------------------------------------------------------------------

    def _due(self) -> int | None:
        dues = [d for d in (esc.next_due(s) for s in self._states.values()) if d is not None]
        flood = self._flood.next_due()
        if flood is not None:
            dues.append(flood)
        if self._states and self._next_poll is not None:
            dues.append(self._next_poll)
        return min(dues, default=None)

    async def _loop(self) -> None:
        while True:
            due = self._due()
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
            except Exception:  # a store outage must not kill the notifier: retry the step
                log.exception("notifier step failed; retrying")
                await asyncio.sleep(self._backoff)  # backoff before retrying, not synchronisation
            finally:
                self._busy = False
                async with self._settled:
                    self._settled.notify_all()

    async def _step(self) -> None:
        now = self.clock.now()
        items = list(self._inbox)
        self._inbox.clear()
        flood_before = self._flood.dump()
        try:
            await self._process(items, now)
        except BaseException:
            self._inbox.extendleft(reversed(items))  # nothing was saved: redo the whole step
            self._flood = FloodControl.load(flood_before)
            raise

    async def _process(self, items: list[_Item], now: int) -> None:
        states = dict(self._states)
        todo: list[tuple[str, esc.Event]] = []
        journal: list[JournalEntry] = []
        new_infos: dict[str, _Info] = {}

        # 1. what happened: raises, clears, acks, shelves, failures
        raised: list[tuple[AlertEvent, Mapping[str, list[str]]]] = []
        for item in items:
            if isinstance(item, _Failed):
                todo.append((item.alert_id, esc.DeliveryFailed(item.at, item.step, item.recipient)))
                journal.append(
                    JournalEntry(item.alert_id, item.at, "delivery-failed", "notifier", dict(item.detail))
                )
            elif isinstance(item, _Control):
                todo.append((item.alert_id, item.event))
            else:
                events, on_shift = item
                for ev in events:
                    if ev.kind == "raised":
                        raised.append((ev, on_shift.get(ev.alert_id, {})))
                    else:
                        todo.append((ev.alert_id, esc.Cleared(ev.at)))
                        if ev.alert_id in self._info:
                            self._info[ev.alert_id].cleared_at = ev.at
        first: list[tuple[str, esc.Event]] = []
        fresh = [ev for ev, _ in raised if ev.alert_id not in states]
        known = await self.outbox.known({ev.alert_id for ev in fresh})
        for ev, shift in raised:
            aid = ev.alert_id
            if aid in states or aid in known or aid in new_infos:
                continue  # a replayed raise: its escalation exists already
            policy = self.team.policy(ev.notify)
            if policy is None:
                self.counts["unrouted"] += 1
                continue
            windows = self.roster.maintenance(ev.asset)
            roles = self.team.roles
            start = min(ev.raised_at, now)  # an event time ahead of our clock is skew: notify now
            states[aid] = esc.plan(aid, start, shift, policy, roles=roles, maintenance=windows)
            new_infos[aid] = _Info.of(ev, shift, await self._trend(ev))
            first.append((aid, esc.Tick(now)))  # notify the raise before a clear in the same batch
        todo[:0] = first
        if self._next_poll is not None and now >= self._next_poll:
            self._next_poll = now + self._poll_interval
            try:
                todo.extend(await self._poll(states, now))
            except StoreError as e:  # the store is down: acks made elsewhere are seen next time
                log.warning("notifier: cannot poll the store for acknowledgements: %s", e)
        for aid, st in states.items():
            d = esc.next_due(st)
            if d is not None and d <= now:
                todo.append((aid, esc.Tick(now)))

        # 2. advance the machines; render what they send
        infos = {**self._info, **new_infos}
        rows: list[OutboxRow] = []
        cancel: list[str] = []
        touched: set[str] = set()
        sends: dict[tuple[str, JournalAction], list[dict[str, Any]]] = {}
        while todo:
            aid, event = todo.pop(0)
            current = states.get(aid)
            if current is None:
                continue
            if isinstance(event, esc.Cleared) and aid in infos:
                infos[aid].cleared_at = event.at
            st, actions = esc.advance(current, event)
            states[aid] = st
            touched.add(aid)
            for action in actions:
                if isinstance(action, esc.Stop):
                    if action.reason == "acked":
                        cancel.append(aid)
                    continue
                info = infos.get(aid)
                made, unreachable = self._render(action, info, now)
                rows.extend(made)
                kind: JournalAction = "escalated" if action.kind == "escalate" else "notified"
                sends.setdefault((aid, kind), []).append(
                    {
                        "step": action.step,
                        "kind": action.kind,
                        "recipients": list(action.recipients),
                        "held": sorted({r.recipient for r in made if r.status == "held"}),
                        "unreachable": unreachable,
                    }
                )
                for person in unreachable:
                    todo.append((aid, esc.DeliveryFailed(now, action.step, person)))
                    journal.append(
                        JournalEntry(aid, now, "delivery-failed", "notifier",
                                     {"step": action.step, "recipient": person, "reason": "no contact"})
                    )  # fmt: skip

        # 3. flood digests due now
        digested: list[int] = []
        for digest in self._flood.flush(now):
            held = await self.outbox.held(digest.recipient)
            made = self._digest(digest.recipient, held, digest.since, now)
            rows.extend(made)
            digested.extend(r.id for r in held)

        # 4. persist in one transaction, then queue
        for (aid, action_name), detail in sends.items():
            journal.append(JournalEntry(aid, now, action_name, "notifier", {"sends": detail}))
        rows = self._reserve(rows)
        change = Change(
            states={aid: (esc.dump(states[aid]), _active(states[aid])) for aid in touched},
            rows=rows,
            cancel=cancel,
            digested=digested,
            flood=self._flood.dump() if rows or digested or touched else None,
        )
        if change.states or change.rows or change.cancel or change.digested:
            saved = await self.outbox.save(change)
        else:
            saved = None
        # committed: now the in-memory view may move on
        self._info.update(new_infos)
        for aid in touched:
            if _active(states[aid]):
                self._states[aid] = states[aid]
            else:
                self._states.pop(aid, None)
                self._info.pop(aid, None)
                self._shelf_seen.pop(aid, None)
        if saved is not None:
            self._cancelled.update(saved.cancelled)
            self.counts["cancelled"] += len(saved.cancelled)
            for row in saved.rows:
                if row.status == "sending":
                    self._messages.setdefault(row.msg_key, [0, 0])[0] += 1
                    self._queue(row.channel).put_nowait(row)
                    self._inflight += 1
                elif row.status == "held":
                    self.counts["held"] += 1
        await self._dispatch()
        if journal:
            try:
                await self.store.append_journal(self._unique(journal))
            except Exception:  # the journal is an audit trail; never stop notifying for it
                log.exception("notifier could not write %d journal entries", len(journal))

    def _unique(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        """The journal is keyed by (alert, at, action, actor): move a second entry 1 ns on."""
        out = []
        for e in entries:
            key = (e.alert_id, e.action)
            at = max(e.at, self._journal_last.get(key, e.at - 1) + 1)
            self._journal_last[key] = at
            out.append(replace(e, at=at) if at != e.at else e)
        if len(self._journal_last) > 100_000:
            self._journal_last.clear()
        return out

    async def _poll(self, states: Mapping[str, esc.EscalationState], now: int) -> list[tuple[str, esc.Event]]:
        """Events the store knows and the notifier was not told (``plantpulse ack``, other processes)."""
        out: list[tuple[str, esc.Event]] = []
        for aid, st in list(states.items()):
            alert = await self.store.alert(aid)
            if alert is None:
                continue
            if alert.acked_at is not None and st.acked_at is None:
                out.append((aid, esc.Acked(alert.acked_at, alert.acked_by or "?")))
            if alert.cleared_at is not None and st.cleared_at is None:
                out.append((aid, esc.Cleared(alert.cleared_at)))
            if alert.shelved_until != self._shelf_seen.get(aid) and alert.shelved_until is not None:
                self._shelf_seen[aid] = alert.shelved_until
                if alert.shelved_until > now:
                    out.append((aid, esc.Shelved(now, alert.shelved_until)))
        return out

    # -- rendering ----------------------------------------------------------------------------

    async def _trend(self, ev: AlertEvent) -> Trend | None:
        """Min/max/first/last of the tag over the rule's ``for`` window, from the store. The
        samples of the batch that raised are still on their way to it, so the newest tens of
        milliseconds may be missing; the summary is about the window's shape, not its last value."""
        if ev.window <= 0:
            return None
        try:
            buckets = await self.store.series(
                ev.tag, ev.raised_at - ev.window, ev.raised_at + 1, max(ev.window // 60, NS_PER_MS)
            )
        except StoreError:
            return None
        return summarize([b.last for b in buckets], ev.window)

    def _ack_link(self, alert_id: str, person: str, now: int) -> str | None:
        if self._secret is None or self._link_base is None:
            return None
        token = sign(self._secret, alert_id, person, now + self.team.links.ttl, new_nonce())
        return link(self._link_base, token)

    def _render(self, send: esc.Send, info: _Info | None, now: int) -> tuple[list[OutboxRow], list[str]]:
        """Rows for one Send: per person, their language and link, through flood control."""
        rows: list[OutboxRow] = []
        unreachable: list[str] = []
        info = info or _Info("?", "?", "?", "high", send.alert_id, float("nan"), now)
        for person in send.recipients:
            contacts = self.team.contacts(person, send.channels)
            if not contacts:
                unreachable.append(person)
                continue
            lang = self.team.language_of(person)
            m = self._message(send.alert_id, info, send.kind, send.step, now)
            if send.kind != "clear":
                m = replace(m, ack_link=self._ack_link(send.alert_id, person, now))
            text = render(m, lang, self.team.templates)
            key = f"{send.alert_id}/{send.step}/{send.kind}/{now}/{person}"
            decision = self._flood.offer(person, key, now)
            status: Literal["sending", "held"] = "sending" if isinstance(decision, Deliver) else "held"
            meta = {
                "rule": info.rule, "tag": info.tag, "asset": info.asset, "severity": info.severity,
                "message": info.message, "value": info.value, "raised_at": info.raised_at,
                "kind": send.kind, "step": send.step,
            }  # fmt: skip
            kind = _notify_type(info.severity, send.kind)
            for channel, _url in contacts:
                rows.append(
                    OutboxRow(send.alert_id, send.step, send.kind, person, channel, text.title, text.body,
                              kind, now, status, key, meta)
                )  # fmt: skip
        return rows, unreachable

    def _message(self, alert_id: str, info: _Info, kind: esc.SendKind, step: int, now: int) -> AlertMessage:
        return AlertMessage(
            alert_id=alert_id, rule=info.rule, tag=info.tag, asset=info.asset, severity=info.severity,
            message=info.message, value=info.value, raised_at=info.raised_at, now=now, kind=kind, step=step,
            cleared_at=info.cleared_at, on_shift=info.on_shift, timezone=self.timezone, trend=info.trend,
        )  # fmt: skip

    def _digest(self, person: str, held: list[OutboxRow], since: int, now: int) -> list[OutboxRow]:
        items: dict[str, AlertMessage] = {}
        for r in held:
            m = r.meta
            items.setdefault(r.msg_key, AlertMessage(
                alert_id=r.alert_id, rule=str(m.get("rule", "?")), tag=str(m.get("tag", "")),
                asset=str(m.get("asset", "")), severity=str(m.get("severity", "high")),
                message=str(m.get("message", "")), value=float(m.get("value", float("nan"))),
                raised_at=int(m.get("raised_at", r.created_at)), now=now, kind=m.get("kind", "raise"),
                timezone=self.timezone,
            ))  # fmt: skip
        if not items:
            return []
        text = render_digest(list(items.values()), self.team.language_of(person), since, now)
        channels = dict.fromkeys(r.channel for r in held)
        key = f"digest/{person}/{now}"
        self.counts["digests"] += 1
        meta = {"count": len(items)}
        return [
            OutboxRow(
                "", 0, "digest", person, ch, text.title, text.body, "warning", now, "sending", key, meta
            )
            for ch in channels
        ]

    # -- delivery -----------------------------------------------------------------------------

    def _reserve(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Rows that fit their channel's queue are saved already claimed (``sending``), the rest
        ``pending`` for ``_dispatch``: one transaction fewer on the hot path."""
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
                self.counts["deferred"] += 1
                out.append(replace(r, status="pending"))
        return out

    async def _dispatch(self) -> None:
        for channel in sorted(self._backlog):
            q = self._queue(channel)
            free = self._queue_size - q.qsize()
            if free <= 0:
                continue
            rows = await self.outbox.claim(channel, free)
            for row in rows:
                if row.msg_key not in self._messages:
                    self._messages[row.msg_key] = [0, 0]
                self._messages[row.msg_key][0] += 1
                q.put_nowait(row)
                self._inflight += 1
            if len(rows) < free:
                self._backlog.discard(channel)

    def _queue(self, channel: str) -> asyncio.Queue[OutboxRow]:
        q = self._queues.get(channel)
        if q is None:
            q = self._queues[channel] = asyncio.Queue(self._queue_size)
            for i in range(self._workers_per_channel):
                self._tasks.append(asyncio.create_task(self._worker(q), name=f"notifier {channel} #{i}"))
        return q

    async def _worker(self, q: asyncio.Queue[OutboxRow]) -> None:
        while True:
            row = await q.get()
            try:
                if row.id in self._cancelled:
                    self._cancelled.discard(row.id)
                    self._finish_message(row, delivered=True)
                else:
                    await self._deliver(row)
            except Exception:
                log.exception("notifier: delivery of outbox row %d failed unexpectedly", row.id)
            finally:
                q.task_done()
                self._inflight -= 1
                if row.channel in self._backlog:
                    self._wake.set()
                async with self._settled:
                    self._settled.notify_all()

    def _url(self, person: str, channel: str) -> str | None:
        for kind, url in self.team.contacts(person, (channel,)):
            if kind == channel:
                return url
        return None

    async def _send_once(self, url: str, row: OutboxRow) -> tuple[bool, str]:
        """One provider call; apprise's and the network's errors become (False, text) here."""
        ap = self._apprise.get(url)
        if ap is None:
            ap = apprise.Apprise()
            if not ap.add(url):
                return False, "not a valid Apprise URL"
            self._apprise[url] = ap
        try:
            async with asyncio.timeout(self._send_timeout):
                result = await ap.async_notify(body=row.body, title=row.title, notify_type=row.notify_type)
        except TimeoutError:
            return False, f"timeout after {self._send_timeout:g} s"
        except Exception as e:  # apprise plugins raise anything; the attempt is recorded, not fatal
            return False, f"{type(e).__name__}: {e}"
        ok = bool(result)
        texts: list[str] = []
        with contextlib.suppress(Exception):
            texts = [str(getattr(e, "message", e)) for e in result.logs()]
        status = getattr(getattr(result, "status", None), "name", "SUCCESS" if ok else "FAILURE")
        return ok, "; ".join([str(status), *texts])[:2000]

    async def _deliver(self, row: OutboxRow) -> None:
        url = self._url(row.recipient, row.channel)
        delay = self._backoff
        first = row.attempts + 1
        for attempt in range(first, first + self._retries):
            if row.id in self._cancelled:
                self._cancelled.discard(row.id)
                self._finish_message(row, delivered=True)
                return
            if url is None:
                ok, response = False, f"{row.recipient} has no contact {row.channel!r} any more"
            else:
                ok, response = await self._send_once(url, row)
            last = attempt == first + self._retries - 1 or url is None
            final: Literal["sent", "failed"] | None = "sent" if ok else ("failed" if last else None)
            await self.outbox.record(
                Delivery(row.id, attempt, self.clock.now(), row.channel, row.recipient,
                         "ok" if ok else "error", response),
                final,
            )  # fmt: skip
            if ok:
                self.counts["sent"] += 1
                self._finish_message(row, delivered=True)
                return
            self.counts["attempts_failed"] += 1
            if last:
                break
            await asyncio.sleep(delay)  # retry backoff, not synchronisation
            delay *= 2
        self.counts["failed"] += 1
        log.warning("notifier: %s to %s over %s failed after retries", row.kind, row.recipient, row.channel)
        if self._finish_message(row, delivered=False) and row.alert_id and row.kind != "clear":
            self._inbox.append(
                _Failed(row.alert_id, row.step, row.recipient, self.clock.now(),
                        {"step": row.step, "recipient": row.recipient, "channel": row.channel,
                         "outbox_id": row.id})
            )  # fmt: skip
            self._wake.set()

    def _finish_message(self, row: OutboxRow, *, delivered: bool) -> bool:
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


__all__ = ["Clock", "EscalationNotifier", "ManualClock", "SystemClock"]
