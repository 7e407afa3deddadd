"""Acknowledgements between the local outbox and the store.

An acknowledgement is recorded in the outbox first (``acknowledge``: with a link's nonce in the
same transaction), the escalation is stopped before the caller is answered, and ``AckForwarder``
writes it to the store, oldest first, retrying through outages. Forwarding is idempotent (the
store sets ``acked_*`` once and keys its journal by alert, time, action and actor), so
forwarding one twice, or racing ``plantpulse ack`` doing the same, is harmless. When the store
has no such alert: if the notifier knows it, its raise is still on its way through the spool
and the acknowledgement waits; otherwise it is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from plantpulse.alerts import Alert
from plantpulse.errors import StoreError
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.compose import AlertInfo
from plantpulse.notifier.outbox import Ack, Outbox
from plantpulse.store.base import Store

log = logging.getLogger(__name__)


def local_alert(alert_id: str, info: AlertInfo, state: esc.EscalationState | None, ack: Ack | None) -> Alert:
    """The alert as the notifier knows it, for answers given while the store is unreachable."""
    return Alert(
        id=alert_id, rule=info.rule, tag=info.tag, asset=info.asset, severity=info.severity,  # type: ignore[arg-type]
        message=info.message, raised_at=info.raised_at, value=info.value,
        cleared_at=state.cleared_at if state is not None else None,
        acked_at=ack.at if ack is not None else None, acked_by=ack.by if ack is not None else None,
        ack_comment=ack.comment if ack is not None else None,
        on_shift={r: list(p) for r, p in info.on_shift.items()},
    )  # fmt: skip


async def known_alert(
    outbox: Outbox, alert_id: str, active: Mapping[str, tuple[esc.EscalationState, AlertInfo]]
) -> tuple[esc.EscalationState | None, AlertInfo] | None:
    """State and info of an alert the notifier has (had) an escalation for, from memory or the outbox."""
    if alert_id in active:
        return active[alert_id]
    kept = await outbox.escalation(alert_id)
    if kept is None or not kept.info:
        return None
    return (esc.load(kept.state) if kept.state else None), AlertInfo.load(kept.info)


async def acknowledge(
    outbox: Outbox,
    ack: Ack,
    nonce: str | None,
    *,
    stop: Callable[[Ack], Awaitable[object]],
    forwarder: AckForwarder | None,
    forward_timeout: float,
    active: Mapping[str, tuple[esc.EscalationState, AlertInfo]],
) -> Alert | Literal["used"] | None:
    """Record, ``stop`` the escalation (returns once the loop processed it), try the store once.
    The answer is the store's alert, else the alert as the notifier knows it (store down, raise
    still spooled), else None (nobody knows it); "used" when the link's nonce was spent."""
    recorded = await outbox.acknowledge(ack, nonce)
    if recorded is None:
        return "used"
    await stop(recorded)
    if forwarder is not None:
        try:
            alert = await asyncio.wait_for(forwarder.forward(recorded), forward_timeout)
        except (StoreError, TimeoutError):
            forwarder.wake()  # the forwarder retries until the store takes it
        else:
            if alert is not None:
                return alert
    known = await known_alert(outbox, ack.alert_id, active)
    return None if known is None else local_alert(ack.alert_id, known[1], known[0], recorded)


class AckForwarder:
    """Writes the outbox's unforwarded acknowledgements to the store; ``run`` is its task."""

    def __init__(
        self,
        outbox: Outbox,
        store: Store,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self._backoff = backoff
        self._changed = changed
        self._wake = asyncio.Event()
        self._down = False
        self.drained = False  # nothing waits to be forwarded (as of the last pass)

    def wake(self) -> None:
        self.drained = False
        self._wake.set()

    async def forward(self, ack: Ack) -> Alert | None:
        """Write one acknowledgement to the store; the store's alert, or None when it has none
        (yet). Raises StoreError when the store is unreachable."""
        alert = await self.store.acknowledge(ack.alert_id, ack.by, ack.at, ack.comment, source=ack.source)
        if alert is not None:
            await self.outbox.forwarded(ack.seq)
        elif not await self.outbox.known([ack.alert_id]):
            await self.outbox.forwarded(ack.seq, drop=True)
        if self._down:
            self._down = False
            log.info("acknowledgements reach the store again")
        return alert

    async def run(self) -> None:
        delay = self._backoff[0]
        while True:
            self._wake.clear()
            waiting = False
            try:
                for ack in await self.outbox.unforwarded():
                    waiting |= await self.forward(ack) is None
                delay = self._backoff[0]
            except StoreError as e:
                if not self._down:
                    log.warning("acknowledgements wait in the outbox until the store is back: %s", e)
                    self._down = True
                waiting = True
                delay = min(delay * 2, self._backoff[1])
            except Exception:  # one bad record must not end forwarding for good
                log.exception("acknowledgement forwarding failed; retrying")
                waiting = True
            self.drained = not waiting and not self._wake.is_set()
            self._changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay if waiting else None)


__all__ = ["AckForwarder", "acknowledge", "known_alert", "local_alert"]
