"""The notifier's durable memory: escalation states, the outbox, delivery attempts, used link nonces.

Why a separate contract from ``Store``: the outbox is written by the notifier alone, on its own
connection, and its one hard rule is transactional: an escalation state and the outbox rows its
``Send`` actions produced are saved in ONE transaction (``save``). A step counts as sent once
its rows are in the outbox, so a crash either loses both (the step is planned again from the
old state) or keeps both (the rows are delivered after the restart); a step is never planned
twice. Delivery itself is at-least-once: a crash between the provider accepting a message and
``record`` leaves the row claimed, and ``load`` hands it back as pending.

Row life cycle::

    pending --claim--> sending --record(final)--> sent | failed
    held (flood) --save(digested=...)--> digested
    pending | sending | held --save(cancel=alert)--> cancelled     (acknowledged: Stop)

Backends: ``plantpulse.store.sqlite_outbox.SQLiteOutbox`` (same file as the SQLite store, own
tables and connection) and ``plantpulse.store.postgres_outbox.PostgresOutbox``.
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
class Change:
    """What one step of the notifier persists atomically.

    ``states``: alert id -> dumped EscalationState (``escalation.dump``) and whether it is still
    active (has a next due time or awaits an event); ``cancel``: alerts whose unsent rows are
    cancelled BEFORE ``rows`` are inserted (so the "cleared" notes of a Stop survive);
    ``digested``: held rows now summarised by a digest in ``rows``; ``flood``: FloodControl.dump()."""

    states: Mapping[str, tuple[Mapping[str, Any], bool]] = field(default_factory=dict)
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

    states: dict[str, dict[str, Any]]  # active escalations: alert id -> dumped state
    flood: dict[str, Any] | None


class Outbox(Protocol):
    """Durable notifier state; every method is one transaction."""

    async def open(self) -> None:
        """Connect and create the tables if missing (idempotent)."""

    async def close(self) -> None: ...

    async def save(self, change: Change) -> Saved:
        """Persist states, cancellations, new rows, digested marks and flood state together."""

    async def load(self) -> Loaded:
        """Active states and flood state; rows a crash left ``sending`` go back to ``pending``."""

    async def known(self, alert_ids: Collection[str]) -> set[str]:
        """Which of these alerts already have an escalation (active or finished)."""

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

    async def use_nonce(self, nonce: str, alert_id: str, person: str, at: int) -> bool:
        """Mark an acknowledge-link nonce used; False when it already was (the link is spent)."""

    async def nonce_used(self, nonce: str) -> bool: ...


def open_outbox(store_url: str) -> Outbox:
    """The outbox living next to the store named by ``store_url``."""
    scheme = store_url.partition(":")[0].lower()
    if scheme == "sqlite":
        from plantpulse.store.sqlite_outbox import SQLiteOutbox

        return SQLiteOutbox(store_url)
    if scheme in {"postgresql", "postgres"}:
        from plantpulse.store.postgres_outbox import PostgresOutbox

        return PostgresOutbox(store_url)
    raise ValueError(f"no outbox for store URL scheme {scheme!r}")


__all__ = [
    "AttemptStatus",
    "Change",
    "Delivery",
    "Loaded",
    "Outbox",
    "OutboxRow",
    "RowKind",
    "RowStatus",
    "Saved",
    "open_outbox",
]
