"""The notifier's durable memory: escalations, the outbox, delivery attempts, acknowledgements.

Why a contract of its own, apart from ``Store``: notifications must not depend on the sample
store. The outbox is always a local file next to the spool (``plant.store.state_dir /
"outbox.db"``, ``plantpulse.store.sqlite_outbox.SQLiteOutbox``), whatever the store is, so
pushes and escalation run on time through a database outage.

Its one hard rule is transactional: an escalation state and the outbox rows its ``Send``
actions produced are saved in ONE transaction (``save``). A step counts as sent once its rows
are in the outbox, so a crash either loses both (the step is planned again from the old
state) or keeps both (the rows are delivered after the restart); a step is never planned
twice. Each escalation is kept with what its messages say about the alert (``info``), so a
restart resumes from the outbox alone. Delivery is at-least-once: a crash between the provider
accepting a message and ``record`` leaves the row claimed, and ``load`` hands it back as pending.

Acknowledgements are recorded here first (with a link's nonce in the same transaction), then
forwarded to the store by the notifier; ``acks_since`` lets a running notifier notice those
another process (``plantpulse ack``) wrote, with one query.

Row life cycle::

    pending --claim--> sending --record(final)--> sent | failed
    held (flood) --save(digested=...)--> digested
    pending | sending | held --save(cancel=alert)--> cancelled     (acknowledged: Stop)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RowStatus = Literal["pending", "sending", "held", "sent", "failed", "cancelled", "digested"]
RowKind = Literal["raise", "escalate", "repeat", "clear", "digest"]
AttemptStatus = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message to one person over one channel; ``id`` is 0 until the outbox stored it.

    The rendered text is stored so a retry or a restart sends exactly what was decided; the
    Apprise URL is not (it carries secrets) and is looked up in the team config at delivery.
    ``meta`` keeps what a flood digest needs to summarise the message later."""

    alert_id: str  # "" for a digest
    step: int
    kind: RowKind
    recipient: str
    channel: str
    title: str
    body: str
    notify_type: str  # apprise: info | success | warning | failure
    created_at: int
    status: RowStatus = "pending"
    msg_key: str = ""  # the message this row is one channel of (flood control counts messages)
    meta: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand a row to its provider, with what the provider said."""

    outbox_id: int
    attempt: int
    at: int
    channel: str
    recipient: str
    status: AttemptStatus
    response: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """One alert's escalation as kept: enough to resume it with nothing else."""

    state: Mapping[str, Any]  # escalation.dump(); {} when the plan itself failed
    info: Mapping[str, Any]  # compose.AlertInfo.dump(): what messages say about the alert
    active: bool  # still notifying or awaiting an event
    error: str | None = None  # quarantined: why a step could not be planned, rendered or saved


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement, first recorded locally; ``seq`` orders them (0 until stored)."""

    alert_id: str
    by: str
    at: int
    comment: str | None = None
    source: str = "cli"
    seq: int = 0
    forwarded: bool = False  # in the store already


@dataclass(frozen=True, slots=True)
class Change:
    """What one step of the notifier persists atomically.

    ``states``: alert id -> its escalation; ``cancel``: alerts whose unsent rows are cancelled
    BEFORE ``rows`` are inserted (so the "cleared" notes of a Stop survive); ``digested``: held
    rows now summarised by a digest in ``rows``; ``flood``: FloodControl.dump()."""

    states: Mapping[str, Escalation] = field(default_factory=dict)
    rows: Sequence[OutboxRow] = ()
    cancel: Collection[str] = ()
    digested: Collection[int] = ()
    flood: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    rows: list[OutboxRow]  # the inserted rows with their ids
    cancelled: list[int]  # ids of rows that were cancelled


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a starting notifier resumes from."""

    states: dict[str, Escalation]  # active escalations
    flood: dict[str, Any] | None
    acks: list[Ack]  # acknowledgements of those alerts (made while the notifier was down, too)
    ack_seq: int  # the newest acknowledgement's seq: ``acks_since`` goes on from here


class Outbox(Protocol):
    """Durable notifier state; every method is one transaction."""

    async def open(self) -> None:
        """Create the file and tables if missing (idempotent); waits for another process's lock."""

    async def close(self) -> None: ...

    async def save(self, change: Change) -> Saved:
        """Persist states, cancellations, new rows, digested marks and flood state together."""

    async def load(self) -> Loaded:
        """Active escalations, flood state and their acknowledgements; rows a crash left
        ``sending`` go back to ``pending``."""

    async def known(self, alert_ids: Collection[str]) -> set[str]:
        """Which of these alerts already have an escalation (active, finished or quarantined)."""

    async def escalation(self, alert_id: str) -> Escalation | None: ...

    async def claim(self, channel: str, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` pending rows of ``channel``, oldest first, now marked ``sending``."""

    async def record(self, delivery: Delivery, final: Literal["sent", "failed"] | None) -> None:
        """Store one attempt; with ``final``, finish the row (unless it was cancelled meanwhile)."""

    async def held(self, recipient: str) -> list[OutboxRow]:
        """Rows held by flood control for ``recipient``, oldest first."""

    async def rows(self, alert_id: str | None = None) -> list[OutboxRow]:
        """Every row (of one alert), oldest first: for the API, tests and audits."""

    async def deliveries(self, outbox_id: int | None = None) -> list[Delivery]:
        """Delivery attempts (of one row), oldest first."""

    async def acknowledge(self, ack: Ack, nonce: str | None = None) -> Ack | None:
        """Record ``ack`` unless the alert is acknowledged already; with a link's ``nonce``,
        spend it in the same transaction. Returns the acknowledgement in force (the first one),
        or None when the nonce was spent before (nothing recorded)."""

    async def acks_since(self, seq: int) -> list[Ack]:
        """Acknowledgements recorded after ``seq``, in order: one query, whatever their number."""

    async def unforwarded(self, limit: int = 100) -> list[Ack]:
        """Acknowledgements not yet in the store, oldest first."""

    async def forwarded(self, seq: int, *, drop: bool = False) -> None:
        """The store has acknowledgement ``seq`` (``drop``: it has no such alert; forget it)."""

    async def nonce_used(self, nonce: str) -> bool: ...


__all__ = [
    "Ack",
    "AttemptStatus",
    "Change",
    "Delivery",
    "Escalation",
    "Loaded",
    "Outbox",
    "OutboxRow",
    "RowKind",
    "RowStatus",
    "Saved",
]
