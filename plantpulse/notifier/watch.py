"""Acknowledgements, clears and shelves made in the store by others (another process, the
board), noticed with ONE read per interval over every active escalation (``Store.alerts_by_id``).

A task of its own: the escalation loop never waits for it or for the store. While the store is
unreachable nothing is noticed this way (logged once per outage); acknowledgements made through
this process or ``plantpulse ack`` reach the loop directly or through the outbox anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from plantpulse.errors import StoreError
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.clock import NS_PER_S, Clock
from plantpulse.store.base import Store

log = logging.getLogger(__name__)


class StoreWatch:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        interval: int,
        active: Callable[[], Mapping[str, esc.EscalationState]],
        post: Callable[[str, esc.Event], object],
        changed: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self._active = active
        self._post = post
        self._changed = changed
        self._shelf_seen: dict[str, int | None] = {}
        self._down = False
        self.busy = False
        self.next: int | None = None

    def settled(self, now: int) -> bool:
        """Nothing due or running (tests wait for this instead of sleeping)."""
        return not self.busy and (self.next is None or self.next > now or not self._active())

    def shelved(self, alert_id: str, until: int) -> None:
        """A shelve this process made: not to be noticed again as someone else's."""
        self._shelf_seen[alert_id] = until

    async def run(self) -> None:
        while True:
            self.next = self.clock.now() + self.interval
            self._changed()
            await self.clock.sleep_until(self.next)
            states = self._active()
            if not states:
                continue
            self.busy = True
            try:
                await self._poll(states)
            finally:
                self.busy = False
                self._changed()

    async def _poll(self, states: Mapping[str, esc.EscalationState]) -> None:
        try:
            async with asyncio.timeout(max(1.0, self.interval / NS_PER_S)):
                alerts = await self.store.alerts_by_id(list(states))
        except (StoreError, TimeoutError) as e:
            if not self._down:
                log.warning("notifier: acknowledgements made in the store unseen while it is down: %s", e)
                self._down = True
            return
        self._down = False
        now = self.clock.now()
        for alert in alerts:
            st = states.get(alert.id)
            if st is None:
                continue
            if alert.acked_at is not None and st.acked_at is None:
                self._post(alert.id, esc.Acked(alert.acked_at, alert.acked_by or "?"))
            if alert.cleared_at is not None and st.cleared_at is None:
                self._post(alert.id, esc.Cleared(alert.cleared_at))
            until = alert.shelved_until
            if until is not None and until != self._shelf_seen.get(alert.id):
                self._shelf_seen[alert.id] = until
                if until > now:
                    self._post(alert.id, esc.Shelved(now, until))
        for gone in set(self._shelf_seen) - set(states):
            del self._shelf_seen[gone]


__all__ = ["StoreWatch"]
