"""The notifier's journal entries (``notified``, ``escalated``, ``delivery-failed``,
``escalation-failed``) on their way to the store.

They go to a ``JournalSink``: in ``plantpulse run`` the pipeline's spool writer, which appends to
the fsync'd spool and never fails on a store outage; the store gets them when it is back. The
journal is an audit trail: a failure to write it is logged, never allowed to stop notifying.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from plantpulse.alerts import JournalEntry

log = logging.getLogger(__name__)


class JournalSink(Protocol):
    """``SpoolWriter`` (durable through outages) or, in tests, a Store."""

    async def append_journal(self, entries: Sequence[JournalEntry]) -> None: ...


class Journal:
    def __init__(self, sink: JournalSink | None) -> None:
        self.sink = sink
        self._later: list[JournalEntry] = []
        self._last: dict[tuple[str, str], int] = {}

    def later(self, entries: Sequence[JournalEntry]) -> None:
        """Entries from a callback; written with the next ``write``."""
        self._later.extend(entries)

    async def write(self, entries: Sequence[JournalEntry] = ()) -> None:
        batch, self._later = [*self._later, *entries], []
        if self.sink is None or not batch:
            return
        try:
            await self.sink.append_journal(self._unique(batch))
        except Exception:
            log.exception("notifier could not write %d journal entries", len(batch))

    def _unique(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        """The journal is keyed by (alert, at, action, actor): move a second entry 1 ns on."""
        out = []
        for e in entries:
            key = (e.alert_id, e.action)
            at = max(e.at, self._last.get(key, e.at - 1) + 1)
            self._last[key] = at
            out.append(replace(e, at=at) if at != e.at else e)
        if len(self._last) > 100_000:
            self._last.clear()
        return out


__all__ = ["Journal", "JournalSink"]
