"""The escalation of one alert as a pure state machine: events in, actions out (SPEC §6, ISA-18.2).

    state = plan(alert_id, raised_at, on_shift, policy, maintenance=windows)
    state, actions = advance(state, Tick(now))        # also Acked, Cleared, Shelved, Unshelved,
                                                      # DeliveryFailed
    when = next_due(state)                            # the adapter's next timer, or None

The adapter performs the actions (``Send`` -> outbox rows, ``Stop`` -> cancel what is queued)
and persists the state with them in one transaction: a step counts as sent once it is in the
outbox, and ``sent`` in the state is what makes a restart resume without sending a step twice.
The state is a frozen dataclass of plain values; ``dump``/``load`` turn it into JSON-ready data.

Timing rules:
- Step *k* is due when the alert has gone ``after`` without acknowledgement, counting only time
  that is not suppressed: maintenance windows and shelves pause the clock, so a step never fires
  inside one and the schedule resumes where it stood when it ends.
- Overdue steps (late tick, restart after downtime) are all sent at the next tick, each once, in
  order; an overdue repeat is sent once, never as a burst.
- ``repeat`` re-sends the latest step while unacknowledged; a new step restarts the interval.
- A failed delivery of the latest step (the adapter gave up retrying), or a step whose roles
  nobody holds, makes the next step due at once.
- Acknowledging stops everything. Clearing sends a "cleared" note to everyone notified so far;
  the alert then still awaits acknowledgement (unacknowledged-cleared) and escalation goes on
  only with ``continue_after_clear``.
- When a shelve ends (expiry or unshelve) on an alert that was already notified, the latest step
  is sent again as a repeat: the alert is announced anew, as ISA-18.2 asks of a return from shelf.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from plantpulse.people.schema import EscalationPolicy

SendKind = Literal["raise", "escalate", "repeat", "clear"]


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A policy step with its recipients resolved from the on-shift snapshot at raise."""

    index: int
    after: int
    recipients: tuple[str, ...]
    channels: tuple[str, ...] | None  # None: every contact of each recipient


@dataclass(frozen=True, slots=True)
class Sent:
    step: int
    kind: SendKind
    at: int


@dataclass(frozen=True, slots=True)
class EscalationState:
    alert_id: str
    raised_at: int
    steps: tuple[PlannedStep, ...]
    repeat: int | None = None
    continue_after_clear: bool = False
    max_shelve: int = 8 * 3600 * 10**9
    maintenance: tuple[tuple[int, int], ...] = ()
    shelves: tuple[tuple[int, int], ...] = ()
    sent: tuple[Sent, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()  # (step, recipient) the adapter gave up on
    forced_at: int | None = None  # the next step is due at this instant (failure, nobody to notify)
    reannounce_at: int | None = None  # a shelve ends here: announce again
    cleared_at: int | None = None
    acked_at: int | None = None
    acked_by: str | None = None
    stopped: Literal["acked", "cleared"] | None = None


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    at: int


@dataclass(frozen=True, slots=True)
class Acked:
    at: int
    by: str


@dataclass(frozen=True, slots=True)
class Cleared:
    at: int


@dataclass(frozen=True, slots=True)
class Shelved:
    at: int
    until: int  # clamped to at + policy max_shelve


@dataclass(frozen=True, slots=True)
class Unshelved:
    at: int


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    at: int
    step: int
    recipient: str


Event = Tick | Acked | Cleared | Shelved | Unshelved | DeliveryFailed

# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Notify ``recipients`` of the alert over ``channels`` (None: all their contacts)."""

    alert_id: str
    step: int
    kind: SendKind
    recipients: tuple[str, ...]  # may be empty: the step's roles had nobody; journal it
    channels: tuple[str, ...] | None
    at: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Nothing more will be sent for this alert: cancel whatever is still queued for it."""

    alert_id: str
    reason: Literal["acked", "cleared"]
    at: int


Action = Send | Stop


# -- building -----------------------------------------------------------------------------------


def plan(
    alert_id: str,
    raised_at: int,
    on_shift: Mapping[str, Iterable[str]],
    policy: EscalationPolicy,
    *,
    roles: Collection[str] = (),
    maintenance: Iterable[tuple[int, int]] = (),
) -> EscalationState:
    """Resolve each step's ``to`` through the on-shift snapshot: a name that is a role (a key of
    ``on_shift`` or in ``roles``) gives the people holding it, any other name is a person."""
    steps = []
    for i, step in enumerate(policy.steps):
        who: list[str] = []
        for name in step.to:
            if name in on_shift or name in roles:
                who.extend(on_shift.get(name, ()))
            else:
                who.append(name)
        channels = tuple(step.channels) if step.channels is not None else None
        steps.append(PlannedStep(i, step.after, tuple(dict.fromkeys(who)), channels))
    return EscalationState(
        alert_id=alert_id,
        raised_at=raised_at,
        steps=tuple(steps),
        repeat=policy.repeat,
        continue_after_clear=policy.continue_after_clear,
        max_shelve=policy.max_shelve,
        maintenance=tuple(sorted((int(a), int(b)) for a, b in maintenance if b > a)),
    )


# -- time with suppression ----------------------------------------------------------------------


def _blocks(s: EscalationState) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted((*s.maintenance, *s.shelves)):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _advance(s: EscalationState, start: int, active: int) -> int:
    """The first unsuppressed instant after ``active`` ns of unsuppressed time from ``start``."""
    t, left = start, active
    for a, b in _blocks(s):
        if b <= t:
            continue
        if a > t:
            if left < a - t:
                return t + left
            left -= a - t
        t = b
    return t + left


def suppressed(s: EscalationState, at: int) -> bool:
    """Inside a maintenance window or a shelve: notifications are held, the alert is still recorded."""
    return any(a <= at < b for a, b in _blocks(s))


def _steps_sent(s: EscalationState) -> int:
    return len({x.step for x in s.sent if x.kind in ("raise", "escalate")})


def _notifying(s: EscalationState) -> bool:
    return s.stopped is None and s.acked_at is None


def _step_due(s: EscalationState) -> int | None:
    k = _steps_sent(s)
    if k >= len(s.steps):
        return None
    due = _advance(s, s.raised_at, s.steps[k].after)
    if s.forced_at is not None:
        due = min(due, _advance(s, s.forced_at, 0))
    return due


def _last(s: EscalationState) -> Sent | None:
    sends = [x for x in s.sent if x.kind != "clear"]
    return sends[-1] if sends else None


def _repeat_due(s: EscalationState) -> int | None:
    last = _last(s)
    if s.repeat is None or last is None:
        return None
    return _advance(s, last.at, s.repeat)


def next_due(s: EscalationState) -> int | None:
    """When ``advance(state, Tick(t))`` next has something to do; None: nothing until an event."""
    if not _notifying(s):
        return None
    dues = [_step_due(s), _repeat_due(s)]
    if s.reannounce_at is not None and _last(s) is not None:
        dues.append(_advance(s, s.reannounce_at, 0))
    return min((d for d in dues if d is not None), default=None)


# -- transitions --------------------------------------------------------------------------------


def _send(s: EscalationState, step: PlannedStep, kind: SendKind, at: int) -> tuple[EscalationState, Send]:
    s = replace(s, sent=(*s.sent, Sent(step.index, kind, at)))
    return s, Send(s.alert_id, step.index, kind, step.recipients, step.channels, at)


def _tick(s: EscalationState, now: int) -> tuple[EscalationState, list[Action]]:
    actions: list[Action] = []
    while _notifying(s):
        due = _step_due(s)
        if due is not None and due <= now:
            step = s.steps[_steps_sent(s)]
            s, send = _send(s, step, "raise" if step.index == 0 else "escalate", now)
            s = replace(s, forced_at=now if not step.recipients else None, reannounce_at=None)
            actions.append(send)
            continue
        last = _last(s)
        if last is None:
            break
        if s.reannounce_at is not None and _advance(s, s.reannounce_at, 0) <= now:
            s, send = _send(s, s.steps[last.step], "repeat", now)
            actions.append(send)
            s = replace(s, reannounce_at=None)
            break
        rep = _repeat_due(s)
        if rep is not None and rep <= now:
            s, send = _send(s, s.steps[last.step], "repeat", now)
            actions.append(send)
        break
    return s, actions


def _clear_notes(s: EscalationState, at: int) -> tuple[EscalationState, list[Action]]:
    """One "cleared" send per notified step, each person once, over that step's channels."""
    actions: list[Action] = []
    told: set[str] = set()
    for index in dict.fromkeys(x.step for x in s.sent if x.kind in ("raise", "escalate")):
        step = s.steps[index]
        who = tuple(r for r in step.recipients if r not in told)
        told.update(who)
        if who:
            actions.append(Send(s.alert_id, index, "clear", who, step.channels, at))
    s = replace(s, sent=(*s.sent, *(Sent(a.step, "clear", at) for a in actions if isinstance(a, Send))))
    return s, actions


def advance(s: EscalationState, event: Event) -> tuple[EscalationState, list[Action]]:
    """Apply one event at its time; return the new state and what to perform now."""
    actions: list[Action] = []
    if isinstance(event, Acked):
        if s.acked_at is not None:
            return s, []
        was = s.stopped
        s = replace(s, acked_at=event.at, acked_by=event.by, stopped="acked" if was is None else was)
        return s, [] if was is not None else [Stop(s.alert_id, "acked", event.at)]
    if not _notifying(s) and not isinstance(event, Tick | DeliveryFailed):
        if isinstance(event, Cleared) and s.cleared_at is None:
            s = replace(s, cleared_at=event.at)
        return s, []
    if isinstance(event, Cleared):
        if s.cleared_at is not None:
            return s, []
        s = replace(s, cleared_at=event.at)
        if not suppressed(s, event.at):
            s, actions = _clear_notes(s, event.at)
        if not s.continue_after_clear:
            s = replace(s, stopped="cleared")
            actions.append(Stop(s.alert_id, "cleared", event.at))
            return s, actions
    elif isinstance(event, Shelved):
        until = min(event.until, event.at + s.max_shelve)
        if until <= event.at:
            return s, []
        shelves = tuple((a, min(b, event.at)) for a, b in s.shelves if a < event.at)  # a new shelve replaces
        s = replace(s, shelves=(*shelves, (event.at, until)), reannounce_at=until if _last(s) else None)
    elif isinstance(event, Unshelved):
        if not suppressed(replace(s, maintenance=()), event.at):
            return s, []
        shelves = tuple((a, min(b, event.at)) for a, b in s.shelves if a < event.at)
        s = replace(s, shelves=shelves, reannounce_at=event.at if _last(s) else None)
    elif isinstance(event, DeliveryFailed):
        s = replace(s, failed=(*s.failed, (event.step, event.recipient)))
        last = max((x.step for x in s.sent if x.kind in ("raise", "escalate")), default=None)
        if event.step == last and _notifying(s):
            s = replace(s, forced_at=event.at)
    s, more = _tick(s, event.at)
    return s, actions + more


# -- persistence --------------------------------------------------------------------------------


def dump(s: EscalationState) -> dict[str, Any]:
    """JSON-ready plain data of the state."""
    return asdict(s)


def load(data: Mapping[str, Any]) -> EscalationState:
    """Inverse of ``dump`` (accepts the lists JSON makes of tuples)."""
    d = dict(data)

    def pairs(v: Any) -> tuple[tuple[Any, Any], ...]:
        return tuple((a, b) for a, b in v)

    steps = tuple(
        PlannedStep(
            p["index"],
            p["after"],
            tuple(p["recipients"]),
            tuple(p["channels"]) if p["channels"] is not None else None,
        )
        for p in d.pop("steps")
    )
    sent = tuple(Sent(x["step"], x["kind"], x["at"]) for x in d.pop("sent"))
    return EscalationState(
        steps=steps,
        sent=sent,
        maintenance=pairs(d.pop("maintenance")),
        shelves=pairs(d.pop("shelves")),
        failed=pairs(d.pop("failed")),
        **d,
    )


__all__ = [
    "Acked",
    "Action",
    "Cleared",
    "DeliveryFailed",
    "EscalationState",
    "Event",
    "PlannedStep",
    "Send",
    "SendKind",
    "Sent",
    "Shelved",
    "Stop",
    "Tick",
    "Unshelved",
    "advance",
    "dump",
    "load",
    "next_due",
    "plan",
    "suppressed",
]
