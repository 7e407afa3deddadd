"""The store contract every backend implements (SQLite embedded, PostgreSQL/TimescaleDB).

Writes are idempotent: samples are keyed by (tag, ts), alerts by their deterministic id,
journal entries by (alert id, at, action, actor), so a replay after an outage or a restart
never doubles a row. Reads serve dashboards, KPIs and the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from plantpulse.alerts import Alert, AlertEvent, JournalEntry
from plantpulse.samples import Sample, SampleBatch, TagRegistry


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket of a tag's series (the shape of ``samples_1m``)."""

    start: int  # ns, bucket start
    min: float
    max: float
    avg: float
    last: float
    count: int


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    asset: str
    unit: str | None = None
    description: str | None = None


class Store(Protocol):
    """Async store. ``open`` connects and applies migrations; ``close`` flushes."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def register_tags(self, tags: Sequence[TagInfo]) -> None:
        """Create or update tag metadata (unit, description)."""

    async def tags(self) -> list[TagInfo]:
        """Every known tag (registered, or first seen in a batch), sorted by name."""

    async def write_samples(self, batch: SampleBatch, batch_id: str) -> bool:
        """Append a batch in one transaction together with ``batch_id``. A batch id already
        committed is skipped (returns False): replaying a spool never doubles rows."""

    async def write_sample_batches(self, batches: Sequence[tuple[str, SampleBatch]]) -> list[bool]:
        """Several ``(batch_id, batch)`` in ONE transaction, in order; ids already committed are
        skipped (False at their place). A spool's backlog after an outage is committed this way,
        many records per transaction. The batches share one tag registry."""

    async def write_alert_events(
        self,
        events: Sequence[AlertEvent],
        batch_id: str,
        on_shift: dict[str, dict[str, list[str]]] | None = None,
    ) -> bool:
        """Insert raised alerts (``on_shift`` maps alert id -> role -> names, a snapshot taken
        at raise), set ``cleared_at`` on cleared ones, journal both; idempotent like
        ``write_samples``."""

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None: ...

    async def acknowledge(
        self, alert_id: str, by: str, at: int, comment: str | None = None, source: str = "cli"
    ) -> Alert | None:
        """Set acked_* once (a second ack is a no-op returning the alert); journal it.
        Returns None for an unknown id."""

    async def shelve(self, alert_id: str, by: str, at: int, until: int, reason: str) -> Alert | None: ...

    async def latest(self, tags: Sequence[str] | None = None) -> dict[str, Sample]:
        """Latest sample per tag (all tags when ``tags`` is None)."""

    async def read_samples(
        self, tags: Sequence[str], start: int, end: int, registry: TagRegistry, *, prior: bool = False
    ) -> SampleBatch:
        """Every sample of ``tags`` with ``start <= ts < end`` as one batch in time order,
        interned in ``registry``; with ``prior``, each tag's last sample before ``start``
        comes first (the value it held at ``start``: zero-order hold). Unknown tags give no
        rows. Recomputations (``kpi report``, ``trace``) read through this."""

    async def series(self, tag: str, start: int, end: int, bucket: int) -> list[Bucket]:
        """Buckets of ``bucket`` ns over [start, end), from the 1-minute rollup when ``bucket``
        is a multiple of one minute.

        Bucket starts are multiples of ``bucket`` since the epoch; every bucket overlapping
        [start, end) is returned whole, oldest first, so the raw and the rollup path agree.
        Bad samples are left out of the aggregates; buckets without a sample are omitted."""

    async def alerts(
        self,
        start: int | None = None,
        end: int | None = None,
        *,
        rule: str | None = None,
        asset: str | None = None,
        active_only: bool = False,
        limit: int = 1000,
        before: tuple[int, str] | None = None,
    ) -> list[Alert]:
        """Alerts raised in [start, end), newest first (by ``raised_at``, then ``id``); ``asset``
        matches the subtree. ``before`` is the ``(raised_at, id)`` of the last alert of the
        previous page: only alerts after it in that order (keyset paging, so a reader walks any
        number of alerts a page at a time, none skipped or repeated when several share an
        instant)."""

    async def alert(self, alert_id: str) -> Alert | None: ...

    async def alerts_by_id(self, alert_ids: Sequence[str]) -> list[Alert]:
        """The stored ones among ``alert_ids``, in one query (the notifier polls its active
        escalations for acknowledgements made elsewhere); unknown ids are left out."""

    async def journal(self, alert_id: str) -> list[JournalEntry]:
        """The journal of one alert, oldest first."""
