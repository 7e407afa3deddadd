"""One step of the escalation loop: what happened (raises, clears, acknowledgements, failed
deliveries, due times) in, the escalations advanced, their messages composed and everything
saved to the outbox in one transaction out.

``Book`` owns the active escalations (state and ``AlertInfo`` per alert), flood control and the
position in the outbox's acknowledgements. Each alert is advanced on its own: when planning,
advancing or rendering one alert raises, or the outbox refuses its part of the step, that alert
is quarantined (saved inactive with the error) and the others go on. A failure of the outbox as
a whole (locked, disk full: ``sqlite3.OperationalError``) is not a poison: the step is retried.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from plantpulse.alerts import AlertEvent, JournalAction, JournalEntry
from plantpulse.errors import StoreError
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.compose import AlertInfo, Composer, through_flood
from plantpulse.notifier.flood import FloodControl
from plantpulse.notifier.outbox import Change, Escalation, Loaded, Outbox, OutboxRow, Saved
from plantpulse.people.roster import Roster

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Raised:
    """A batch from the pipeline: raises and clears with the on-shift snapshots of the raises."""

    events: Sequence[AlertEvent]
    on_shift: Mapping[str, Mapping[str, Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Control:
    """An event for one escalation; ``done`` is set once a step processed it."""

    alert_id: str
    event: esc.Event
    done: asyncio.Future[None] | None = None


Item = Raised | Control


@dataclass(slots=True)
class _Part:
    """One alert's share of a step."""

    before: esc.EscalationState | None
    state: esc.EscalationState
    info: AlertInfo
    rows: list[OutboxRow] = field(default_factory=list)
    sends: list[tuple[esc.Send, list[str]]] = field(default_factory=list)  # with who had no contact
    journal: list[JournalEntry] = field(default_factory=list)
    cancel: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step saved, for the delivery side and the journal."""

    rows: list[OutboxRow]
    cancelled: list[int]
    journal: list[JournalEntry]
    forward: bool  # acknowledgements written by another process still wait for the store


def active(s: esc.EscalationState) -> bool:
    return s.acked_at is None and s.stopped is None


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".encode("utf-8", "backslashreplace").decode("utf-8")[:500]


def _environmental(e: BaseException) -> bool:
    return isinstance(e, StoreError) and isinstance(e.__cause__, sqlite3.OperationalError)


class Book:
    def __init__(self, roster: Roster, outbox: Outbox, composer: Composer, ack_poll: int) -> None:
        self.roster = roster
        self.team = roster.team
        self.outbox = outbox
        self.composer = composer
        self.ack_poll = ack_poll
        self.states: dict[str, esc.EscalationState] = {}
        self.info: dict[str, AlertInfo] = {}
        fc = self.team.flood
        self.flood = FloodControl(fc.threshold, fc.window, fc.digest_every)
        self.ack_seq = 0
        self.next_ack_poll: int | None = None
        self.counts = Counter[str]()

    def due(self) -> int | None:
        dues = [d for d in (esc.next_due(s) for s in self.states.values()) if d is not None]
        if (flood := self.flood.next_due()) is not None:
            dues.append(flood)
        if self.states and self.next_ack_poll is not None:
            dues.append(self.next_ack_poll)
        return min(dues, default=None)

    def resume(self, loaded: Loaded, now: int) -> tuple[dict[str, Escalation], list[JournalEntry]]:
        """Take back the active escalations and flood state; records this version cannot read
        are quarantined (returned to be saved so, with their journal entries)."""
        broken: dict[str, Escalation] = {}
        for aid, kept in loaded.states.items():
            try:
                self.states[aid], self.info[aid] = esc.load(kept.state), AlertInfo.load(kept.info)
            except Exception as e:
                broken[aid] = Escalation(kept.state, kept.info, False, error_text(e))
        if loaded.flood is not None:
            try:
                self.flood = FloodControl.load(loaded.flood)
            except Exception:
                log.exception("notifier: flood state unreadable; starting afresh")
        self.ack_seq = loaded.ack_seq
        self.next_ack_poll = now + self.ack_poll
        return broken, [self.quarantine(aid, e.error or "", now) for aid, e in broken.items()]

    def quarantine(self, alert_id: str, error: str, now: int) -> JournalEntry:
        """Forget an escalation that cannot go on; logged here, once (it is gone afterwards)."""
        self.states.pop(alert_id, None)
        self.info.pop(alert_id, None)
        self.counts["quarantined"] += 1
        log.error("notifier: escalation of alert %s quarantined: %s", alert_id, error)
        return JournalEntry(alert_id, now, "escalation-failed", "notifier", {"error": error})

    async def step(
        self, items: Sequence[Item], now: int, reserve: Callable[[list[OutboxRow]], list[OutboxRow]]
    ) -> Outcome:
        events: dict[str, list[esc.Event]] = {}
        fresh: dict[str, tuple[AlertEvent, Mapping[str, Sequence[str]]]] = {}
        for item in items:
            if isinstance(item, Control):
                events.setdefault(item.alert_id, []).append(item.event)
                continue
            for ev in item.events:
                if ev.kind == "cleared":
                    events.setdefault(ev.alert_id, []).append(esc.Cleared(ev.at))
                elif ev.alert_id not in self.states:
                    fresh.setdefault(ev.alert_id, (ev, item.on_shift.get(ev.alert_id, {})))
        parts: dict[str, _Part] = {}
        broken: dict[str, Escalation] = {}
        known = await self.outbox.known(list(fresh)) if fresh else set()
        for aid, (ev, shift) in fresh.items():
            if aid in known:
                continue  # a replayed raise: its escalation exists already
            policy = self.team.policy(ev.notify)
            if policy is None:
                self.counts["unrouted"] += 1
                continue
            try:
                info = AlertInfo.of(ev, shift)
                windows = self.roster.maintenance(ev.asset)
                start = min(ev.raised_at, now)  # an event time ahead of our clock is skew: notify now
                plan = esc.plan(aid, start, shift, policy, roles=self.team.roles, maintenance=windows)
            except Exception as e:
                broken[aid] = Escalation({}, AlertInfo.of(ev, {}).dump(), False, error_text(e))
                continue
            parts[aid] = _Part(None, plan, info)
            events.setdefault(aid, []).insert(0, esc.Tick(now))  # the raise before a clear in the batch
        forward, ack_seq = False, self.ack_seq
        if (self.states or parts) and self.next_ack_poll is not None and now >= self.next_ack_poll:
            self.next_ack_poll = now + self.ack_poll
            for ack in await self.outbox.acks_since(self.ack_seq):  # `plantpulse ack` wrote these
                ack_seq = max(ack_seq, ack.seq)
                events.setdefault(ack.alert_id, []).append(esc.Acked(ack.at, ack.by))
                forward |= not ack.forwarded
        for aid, st in self.states.items():
            if (d := esc.next_due(st)) is not None and d <= now:
                events.setdefault(aid, []).append(esc.Tick(now))

        for aid, evs in events.items():
            part = parts.get(aid)
            if part is None:
                if aid not in self.states:
                    continue
                part = parts[aid] = _Part(self.states[aid], self.states[aid], self.info[aid])
            try:
                self._advance(aid, part, evs, now)
            except Exception as e:
                del parts[aid]
                before = esc.dump(part.before) if part.before is not None else {}
                broken[aid] = Escalation(before, part.info.dump(), False, error_text(e))

        _apply(parts.values(), lambda rows: through_flood(rows, self.flood, now))
        _apply(parts.values(), reserve)
        for aid, part in parts.items():
            part.journal.extend(_sends_journal(aid, part, now))
        extra: list[OutboxRow] = []
        digested: list[int] = []
        for digest in self.flood.flush(now):
            held = await self.outbox.held(digest.recipient)
            extra.extend(self.composer.digest(digest.recipient, held, digest.since, now))
            digested.extend(r.id for r in held)
            self.counts["digests"] += 1
        if parts or broken or extra or digested:
            tail = Change(rows=reserve(extra), digested=digested, flood=self.flood.dump())
            saved, committed = await self._save(parts, broken, tail)
        else:  # a quiet poll: nothing to write
            saved, committed = Saved([], []), []
        self.ack_seq = ack_seq

        journal: list[JournalEntry] = []
        for aid, kept in broken.items():
            journal.append(self.quarantine(aid, kept.error or "", now))
        for aid in committed:
            part = parts[aid]
            journal.extend(part.journal)
            if active(part.state):
                self.states[aid], self.info[aid] = part.state, part.info
            else:
                self.states.pop(aid, None)
                self.info.pop(aid, None)
        self.counts["cancelled"] += len(saved.cancelled)
        self.counts["held"] += sum(r.status == "held" for r in saved.rows)
        return Outcome(saved.rows, saved.cancelled, journal, forward)

    def _advance(self, alert_id: str, part: _Part, events: Iterable[esc.Event], now: int) -> None:
        todo = deque(events)
        while todo:
            part.state, actions = esc.advance(part.state, todo.popleft())
            for action in actions:
                if isinstance(action, esc.Stop):
                    part.cancel |= action.reason == "acked"
                    continue
                rows, unreachable = self.composer.rows(action, part.info, now, part.state.cleared_at)
                part.rows.extend(rows)
                part.sends.append((action, unreachable))
                for person in unreachable:
                    todo.append(esc.DeliveryFailed(now, action.step, person))
                    detail = {"step": action.step, "recipient": person, "reason": "no contact"}
                    part.journal.append(JournalEntry(alert_id, now, "delivery-failed", "notifier", detail))

    async def _save(
        self, parts: dict[str, _Part], broken: dict[str, Escalation], tail: Change
    ) -> tuple[Saved, list[str]]:
        """Everything in one transaction; if the outbox refuses it for a reason in the data
        (not a lock or a full disk), each alert apart, quarantining those refused."""
        try:
            return await self.outbox.save(_change(parts, broken, tail)), list(parts)
        except Exception as e:
            if _environmental(e) or len(parts) == 0:
                raise
            log.warning("notifier: outbox refused a step (%s); saving each alert apart", error_text(e))
        rows, cancelled, committed = [], [], []
        for aid, part in parts.items():
            try:
                saved = await self.outbox.save(_change({aid: part}, {}, Change()))
            except Exception as e:
                if _environmental(e):
                    raise  # the step is redone: alerts saved just before may send this step twice
                before = esc.dump(part.before) if part.before is not None else {}
                broken[aid] = Escalation(before, part.info.dump(), False, error_text(e))
                continue
            rows.extend(saved.rows)
            cancelled.extend(saved.cancelled)
            committed.append(aid)
        saved = await self.outbox.save(_change({}, broken, tail))
        return Saved(rows + saved.rows, cancelled + saved.cancelled), committed


def _apply(parts: Iterable[_Part], fn: Callable[[list[OutboxRow]], list[OutboxRow]]) -> None:
    """Run ``fn`` over the rows of all parts at once (flood and queue room are shared), in order."""
    parts = list(parts)
    done = iter(fn([r for p in parts for r in p.rows]))
    for p in parts:
        p.rows = [next(done) for _ in p.rows]


def _sends_journal(alert_id: str, part: _Part, now: int) -> list[JournalEntry]:
    """One ``notified``/``escalated`` entry per alert and step, the recipients in ``detail``."""
    sends: dict[JournalAction, list[dict[str, object]]] = {}
    for send, unreachable in part.sends:
        mine = [r for r in part.rows if (r.step, r.kind) == (send.step, send.kind)]
        held = {r.recipient for r in mine if r.status == "held"}
        sends.setdefault("escalated" if send.kind == "escalate" else "notified", []).append(
            {"step": send.step, "kind": send.kind, "recipients": list(send.recipients),
             "held": sorted(held), "unreachable": unreachable}
        )  # fmt: skip
    return [JournalEntry(alert_id, now, action, "notifier", {"sends": d}) for action, d in sends.items()]


def _change(parts: Mapping[str, _Part], broken: Mapping[str, Escalation], tail: Change) -> Change:
    states = {aid: Escalation(esc.dump(p.state), p.info.dump(), active(p.state)) for aid, p in parts.items()}
    return Change(
        states={**states, **broken},
        rows=[r for p in parts.values() for r in p.rows] + list(tail.rows),
        cancel=[aid for aid, p in parts.items() if p.cancel],
        digested=tail.digested,
        flood=tail.flood,
    )


__all__ = ["Book", "Control", "Item", "Outcome", "Raised", "active", "error_text"]
