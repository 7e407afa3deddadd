"""Alert events from the engine and the alert record kept by the store (SPEC §5)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

_NAMESPACE = uuid.UUID("7f7b1a52-5d2c-4c1e-9a57-0b2f3f1e8c11")


def alert_id(rule: str, tag: str, raised_at: int) -> str:
    """Deterministic id: a replay, a backtest, a restart or a faust worker derive the same id
    for the same alert, which is what makes store writes idempotent."""
    return str(uuid.uuid5(_NAMESPACE, f"{rule}\x00{tag}\x00{raised_at}"))


@dataclass(frozen=True, slots=True)
class Trend:
    """Summary of a tag's good samples over the rule's ``for`` window before a raise: it travels
    with the raise event from the pipeline, which held those samples a moment before."""

    first: float
    last: float
    min: float
    max: float
    n: int
    window: int  # ns


Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A transition emitted by the rules engine; times are event-time ns."""

    kind: Literal["raised", "cleared"]
    rule: str
    tag: str
    severity: Severity
    raised_at: int
    at: int  # == raised_at for "raised", == cleared_at for "cleared"
    value: float  # the tag's value at raised_at
    message: str
    notify: str | None = None
    window: int = 0  # the rule's ``for`` (ns): the span a message's trend summary covers
    trend: Trend | None = None  # raises only: the tag over ``window`` before ``raised_at``
    rule_version: int | None = None  # raises only: the change that made the rule (approvals on)

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.tag, self.raised_at)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertEvent:
        """The inverse of ``dataclasses.asdict`` (spool records, Kafka messages)."""
        t = d.get("trend")
        return cls(**{**d, "trend": Trend(**t) if t is not None else None})

    @property
    def asset(self) -> str:
        return self.tag.rpartition("/")[0]


class AlertState(StrEnum):
    """ISA-18.2 alarm states."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unacknowledged-active"
    ACK_ACTIVE = "acknowledged-active"
    UNACK_CLEARED = "unacknowledged-cleared"
    SHELVED = "shelved"


@dataclass(slots=True)
class Alert:
    """The stored alert. ``on_shift`` maps role -> names at ``raised_at``, a snapshot never recomputed."""

    id: str
    rule: str
    tag: str
    asset: str
    severity: Severity
    message: str
    raised_at: int
    value: float
    cleared_at: int | None = None
    acked_at: int | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    notify: str | None = None
    on_shift: dict[str, list[str]] = field(default_factory=dict)
    shelved_until: int | None = None
    shelve_reason: str | None = None
    rule_version: int | None = None  # the change that made the rule that raised it (docs/approvals.md)

    @classmethod
    def from_event(cls, ev: AlertEvent, on_shift: dict[str, list[str]] | None = None) -> Alert:
        return cls(
            id=ev.alert_id,
            rule=ev.rule,
            tag=ev.tag,
            asset=ev.asset,
            severity=ev.severity,
            message=ev.message,
            raised_at=ev.raised_at,
            value=ev.value,
            cleared_at=ev.at if ev.kind == "cleared" else None,
            notify=ev.notify,
            on_shift=on_shift or {},
            rule_version=ev.rule_version,
        )

    def state(self, now: int) -> AlertState:
        if self.shelved_until is not None and now < self.shelved_until:
            return AlertState.SHELVED
        if self.cleared_at is None:
            return AlertState.UNACK_ACTIVE if self.acked_at is None else AlertState.ACK_ACTIVE
        return AlertState.UNACK_CLEARED if self.acked_at is None else AlertState.NORMAL


JournalAction = Literal[
    "raised",
    "notified",
    "escalated",
    "acknowledged",
    "shelved",
    "unshelved",
    "cleared",
    "delivery-failed",
    "escalation-failed",  # the notifier could not plan, render or save a step: escalation quarantined
]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One line of the append-only alert journal."""

    alert_id: str
    at: int
    action: JournalAction
    actor: str  # "engine", "notifier", a person's name, "api", ...
    detail: dict[str, Any] = field(default_factory=dict)
