"""One change's approval chain as a pure state machine: events in, actions out.

    state = plan(change, levels, proposed_by=name, at=t, remind=4h, escalate_after=1d, escalate_to=roles)
    state, actions = advance(state, Approve(at, by, roles))     # also Reject, Tick, Notified
    when = next_due(state)                                      # the adapter's next timer, or None

Like ``notifier/escalation.py``: frozen data, no clock, no I/O. Who holds which role is an
argument (``roles`` of the person acting), so the rules read in one place:

* levels are signed in order, one person per level, each holding that level's role; the
  proposer signs none, and nobody signs two levels (four eyes per level, not one pair of
  hands); anything else is ``Refuse(reason)``, a one-line message for the person;
* the last signature gives ``Activate`` (an emergency change is live already: its chain is the
  review after the fact, and its last signature activates nothing);
* the proposer, or anyone holding the role of the waiting level or a later one, may reject;
* ``Tick`` asks the waiting level (``Notify`` kind ``request``) once, reminds it every
  ``remind``, escalates once after ``escalate_after`` and tells proposer and signers the
  outcome; each ``Notify`` becomes a ``Notified`` event once the adapter recorded it, which is
  what makes a restart resume without asking twice.

The adapter rebuilds a state by replaying the change's log records through ``advance``
(``changes.py``), so the log is the only state there is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "Accept",
    "Action",
    "Activate",
    "Approve",
    "ChainState",
    "Event",
    "Note",
    "Notified",
    "Notify",
    "NotifyKind",
    "Outcome",
    "Refuse",
    "Reject",
    "Signature",
    "Tick",
    "advance",
    "next_due",
    "plan",
]

NotifyKind = Literal["request", "reminder", "escalation", "outcome"]
Outcome = Literal["pending", "approved", "rejected"]


@dataclass(frozen=True, slots=True)
class Signature:
    level: int  # 0-based
    by: str
    at: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Note:
    level: int
    kind: NotifyKind
    at: int


@dataclass(frozen=True, slots=True)
class ChainState:
    change: int
    levels: tuple[str, ...]  # one role per level
    proposed_by: str
    proposed_at: int
    remind: int | None = None
    escalate_after: int | None = None
    escalate_to: tuple[str, ...] = ()
    emergency: bool = False  # live since the proposal: the chain reviews it
    signatures: tuple[Signature, ...] = ()
    notes: tuple[Note, ...] = ()
    outcome: Outcome = "pending"
    decided_at: int | None = None
    decided_by: str | None = None
    reason: str | None = None

    @property
    def level(self) -> int:
        """The level waiting now (== len(levels) once every level signed)."""
        return len(self.signatures)

    @property
    def since(self) -> int:
        """Since when the waiting level waits."""
        return self.signatures[-1].at if self.signatures else self.proposed_at

    def role(self, level: int) -> str:
        return self.levels[level]

    def where(self, level: int | None = None) -> str:
        k = self.level if level is None else level
        return f"level {k + 1} of {len(self.levels)} ({self.levels[k]})"


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approve:
    at: int
    by: str
    roles: frozenset[str]  # the roles ``by`` holds (people file, assignments)
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    at: int
    by: str
    roles: frozenset[str]
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: int


@dataclass(frozen=True, slots=True)
class Notified:
    """The adapter recorded a ``Notify`` (whether or not every message was delivered)."""

    at: int
    level: int
    kind: NotifyKind


Event = Approve | Reject | Tick | Notified

# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str


@dataclass(frozen=True, slots=True)
class Accept:
    """Record the approval (level signed) or the rejection (level it stopped at)."""

    level: int
    role: str


@dataclass(frozen=True, slots=True)
class Activate:
    """Every level signed: the change goes live."""

    change: int


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell ``people`` and the holders of ``roles`` (but ``exclude``) about the change."""

    change: int
    level: int
    kind: NotifyKind
    roles: tuple[str, ...]
    people: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


Action = Refuse | Accept | Activate | Notify


# -- building -----------------------------------------------------------------------------------


def plan(
    change: int,
    levels: Collection[str],
    *,
    proposed_by: str,
    at: int,
    remind: int | None = None,
    escalate_after: int | None = None,
    escalate_to: Collection[str] = (),
    emergency: bool = False,
) -> ChainState:
    if not levels:
        raise ValueError("a chain needs at least one level")
    return ChainState(
        change=change,
        levels=tuple(levels),
        proposed_by=proposed_by,
        proposed_at=at,
        remind=remind,
        escalate_after=escalate_after,
        escalate_to=tuple(escalate_to),
        emergency=emergency,
    )


# -- transitions --------------------------------------------------------------------------------


def _decided(s: ChainState) -> str:
    if s.outcome == "approved":
        return f"change #{s.change} is already approved" + (" (live)" if not s.emergency else "")
    return f"change #{s.change} was rejected by {s.decided_by}"


def _approve(s: ChainState, e: Approve) -> tuple[ChainState, list[Action]]:
    if s.outcome != "pending":
        return s, [Refuse(_decided(s))]
    k = s.level
    if e.by == s.proposed_by:
        return s, [Refuse(f"{e.by} proposed change #{s.change} and cannot approve it")]
    mine = next((x for x in s.signatures if x.by == e.by), None)
    if mine is not None:
        return s, [
            Refuse(
                f"{e.by} already approved {s.where(mine.level)} of change #{s.change};"
                f" {s.where()} needs another person"
            )
        ]
    if s.levels[k] not in e.roles:
        later = next((j for j in range(k + 1, len(s.levels)) if s.levels[j] in e.roles), None)
        if later is not None:
            return s, [
                Refuse(f"out of order: change #{s.change} waits for {s.where()} before {s.where(later)}")
            ]
        return s, [Refuse(f"{e.by} is not a {s.levels[k]}: {s.where()} of change #{s.change} needs one")]
    s = replace(s, signatures=(*s.signatures, Signature(k, e.by, e.at, e.comment)))
    actions: list[Action] = [Accept(k, s.levels[k])]
    if s.level == len(s.levels):
        s = replace(s, outcome="approved", decided_at=e.at, decided_by=e.by)
        if not s.emergency:
            actions.append(Activate(s.change))
    return s, actions


def _reject(s: ChainState, e: Reject) -> tuple[ChainState, list[Action]]:
    if s.outcome != "pending":
        return s, [Refuse(_decided(s))]
    k = s.level
    allowed = set(s.levels[k:])
    if e.by != s.proposed_by and not (allowed & e.roles):
        roles = ", ".join(dict.fromkeys(s.levels[k:]))
        return s, [Refuse(f"{e.by} cannot reject change #{s.change}: only its proposer or a {roles} can")]
    if not e.reason.strip():
        return s, [Refuse("a rejection needs a reason")]
    s = replace(s, outcome="rejected", decided_at=e.at, decided_by=e.by, reason=e.reason)
    return s, [Accept(k, s.levels[k])]


def _noted(s: ChainState, level: int, kind: NotifyKind) -> list[Note]:
    return [n for n in s.notes if n.level == level and n.kind == kind]


def _asked(s: ChainState) -> int | None:
    """When the waiting level was last asked (request or reminder)."""
    times = [n.at for n in s.notes if n.level == s.level and n.kind in ("request", "reminder")]
    return max(times, default=None)


def _due(s: ChainState) -> list[tuple[int, Notify]]:
    """Every notification the state calls for, with the instant it is due."""
    if s.outcome != "pending":
        if _noted(s, s.level, "outcome"):
            return []
        assert s.decided_at is not None
        people = tuple(dict.fromkeys([s.proposed_by, *(x.by for x in s.signatures)]))
        return [(s.decided_at, Notify(s.change, s.level, "outcome", (), people, (s.decided_by or "",)))]
    k = s.level
    exclude = tuple(dict.fromkeys([s.proposed_by, *(x.by for x in s.signatures)]))
    ask = Notify(s.change, k, "request", (s.levels[k],), (), exclude)
    out: list[tuple[int, Notify]] = []
    asked = _asked(s)
    if asked is None:
        out.append((s.since, ask))
    elif s.remind is not None:
        out.append((asked + s.remind, replace(ask, kind="reminder")))
    if s.escalate_after is not None and s.escalate_to and not _noted(s, k, "escalation"):
        out.append(
            (s.since + s.escalate_after, Notify(s.change, k, "escalation", s.escalate_to, (), exclude))
        )
    return out


def next_due(s: ChainState) -> int | None:
    """When ``advance(state, Tick(t))`` next has something to do; None: nothing until an event."""
    return min((at for at, _ in _due(s)), default=None)


def advance(s: ChainState, event: Event) -> tuple[ChainState, list[Action]]:
    """Apply one event at its time; return the new state and what to perform now."""
    if isinstance(event, Approve):
        return _approve(s, event)
    if isinstance(event, Reject):
        return _reject(s, event)
    if isinstance(event, Notified):
        return replace(s, notes=(*s.notes, Note(event.level, event.kind, event.at))), []
    return s, [n for at, n in _due(s) if at <= event.at]
