"""The alert lifecycle of one (rule, tag) stream, one evaluation point at a time (SPEC §4, 3-7).

    state = INACTIVE
    state, out = step(state, ts, status, value, rule)       # the condition at a point, in time order
    state, out = tick(state, watermark, rule)               # the watermark moved on
    state, out = silence(state, last, now, stale_ns, rule)  # stale: "no sample for D" came true

``out`` lists the transitions (``Raised``, ``Cleared``) in time order. This is the specification
written to be read, in the manner of Prometheus' ``AlertingRule.Eval``: time and the
condition's status come in as arguments, no clock, no I/O. The engine's numpy streams
(condition.py, stale.py) compute the same transitions for whole batches and are
property-tested against it, driven sample by sample (tests/rules/reference.py).

States: ``Inactive``; ``Pending(since, value)``: the firing condition has held since
``since``; ``Firing(raised_at, value)``; ``Clearing(raised_at, value, since)``: firing, and
the clear condition has held since ``since``. ``Cleared`` (Prometheus: resolved) leads back
to ``Inactive``, so a new alert starts only after the previous one cleared.

* A pending alert raises at ``since + for`` as soon as a point or the watermark is at or past
  that instant (``>=``), whatever that point's status: it is then judged as a point of the
  firing alert. So a false point at exactly ``since + for`` raises and clears.
* Before that instant, a point that is not FIRE (false, inside the hysteresis band, or
  unknown because an input is bad) resets the pending alert.
* Clearing mirrors firing with the clear condition and ``clear.for``; a BAND or UNKNOWN point
  resets a pending clear, so nothing clears inside the band or on bad data.
* ``value`` is the one of the last FIRE point before ``raised_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

__all__ = [
    "INACTIVE",
    "Cleared",
    "Clearing",
    "Firing",
    "Inactive",
    "Pending",
    "Raised",
    "State",
    "Status",
    "Timing",
    "Transition",
    "silence",
    "step",
    "tick",
]


class Status(IntEnum):
    """The condition at one evaluation point; the code is ``fire + 2 * clear``, 3 when unknown."""

    BAND = 0  # neither fire nor clear: inside the hysteresis band
    FIRE = 1
    CLEAR = 2
    UNKNOWN = 3  # an input is bad or has no value yet


class Timing(Protocol):
    """How long each condition must hold (a ``Rule`` is one)."""

    @property
    def for_ns(self) -> int: ...

    @property
    def clear_for_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Inactive:
    pass


@dataclass(frozen=True, slots=True)
class Pending:
    since: int
    value: float


@dataclass(frozen=True, slots=True)
class Firing:
    raised_at: int
    value: float


@dataclass(frozen=True, slots=True)
class Clearing:
    raised_at: int
    value: float
    since: int


@dataclass(frozen=True, slots=True)
class Raised:
    at: int
    value: float


@dataclass(frozen=True, slots=True)
class Cleared:
    at: int
    raised_at: int
    value: float


State = Inactive | Pending | Firing | Clearing
Transition = Raised | Cleared
INACTIVE = Inactive()


def step(state: State, ts: int, status: Status, value: float, rule: Timing) -> tuple[State, list[Transition]]:
    """The stream's condition was ``status`` at ``ts`` (``value``: the matched tag's value)."""
    out: list[Transition] = []
    state = _due(state, ts, rule, out)
    match state:
        case Inactive() if status == Status.FIRE:
            state = Pending(ts, value)
        case Pending(since) if status == Status.FIRE:
            state = Pending(since, value)
        case Pending():
            state = INACTIVE
        case Firing(raised_at, v) if status == Status.CLEAR:
            state = Clearing(raised_at, v, ts)
        case Clearing(raised_at, v) if status != Status.CLEAR:
            state = Firing(raised_at, v)
        case _:
            return state, out  # nothing else changes at a point
    return _due(state, ts, rule, out), out  # with no for / clear.for it resolves at once


def tick(state: State, watermark: int, rule: Timing) -> tuple[State, list[Transition]]:
    """The watermark reached ``watermark``: a pending alert or clear whose time has come resolves."""
    out: list[Transition] = []
    return _due(state, watermark, rule, out), out


def silence(
    state: State, last: tuple[int, float] | None, now: int, stale_ns: int, rule: Timing
) -> tuple[State, list[Transition]]:
    """``stale: D``: "no sample for D" comes true at ``last + D`` (``last``: the tag's latest
    sample, its time and value) with no sample there, so that FIRE point is put in once a
    sample or the watermark reaches it (``now >= last + D``). Every sample is a CLEAR point."""
    if state == INACTIVE and last is not None and last[0] + stale_ns <= now:
        return step(state, last[0] + stale_ns, Status.FIRE, last[1], rule)
    return state, []


def _due(state: State, now: int, rule: Timing, out: list[Transition]) -> State:
    """Resolve a pending alert or clear whose hold ended at or before ``now``, at that end."""
    match state:
        case Pending(since, value) if now >= since + rule.for_ns:
            out.append(Raised(since + rule.for_ns, value))
            return Firing(since + rule.for_ns, value)
        case Clearing(raised_at, value, since) if now >= since + rule.clear_for_ns:
            out.append(Cleared(since + rule.clear_for_ns, raised_at, value))
            return INACTIVE
    return state
