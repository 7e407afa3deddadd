"""Pushes every raise and clear to the configured Apprise URLs (webhooks, WeCom, DingTalk, ...).

One bounded queue and one worker per destination, so a slow or dead receiver never holds up
the others or the pipeline. Overflow policy: when a destination's queue is full the OLDEST
queued push is dropped and counted (``dropped``), as Prometheus' notifier does: the newest
state of the plant is the one worth delivering. Failed sends are retried with exponential
backoff a few times, then counted as ``failed``. URLs carry tokens, so logs name a
destination only by its position and scheme.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import apprise

from plantpulse.alerts import AlertEvent
from plantpulse.timefmt import format_duration, iso_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Push:
    title: str
    body: str
    kind: str  # apprise notify type: info | warning | failure | success


def render(ev: AlertEvent, on_shift: dict[str, list[str]] | None = None) -> Push:
    """The minimal message: severity, rule, tag, message, times, who was on shift."""
    if ev.kind == "raised":
        title = f"[{ev.severity.upper()}] {ev.rule} @ {ev.asset}"
        lines = [ev.message, f"tag: {ev.tag}  value: {ev.value:g}", f"raised_at: {iso_ms(ev.raised_at)}"]
        kind = "failure" if ev.severity in ("high", "critical") else "warning"
    else:
        title = f"[CLEARED] {ev.rule} @ {ev.asset}"
        lines = [
            ev.message,
            f"tag: {ev.tag}",
            f"cleared_at: {iso_ms(ev.at)} (active {format_duration(ev.at - ev.raised_at)})",
        ]
        kind = "success"
    if on_shift:
        lines.append(
            "on shift: " + "; ".join(f"{role}: {', '.join(names)}" for role, names in on_shift.items())
        )
    lines.append(f"alert id: {ev.alert_id}")
    return Push(title, "\n".join(lines), kind)


class _Destination:
    def __init__(self, index: int, url: str, capacity: int) -> None:
        self.label = f"destination #{index} ({url.partition('://')[0]})"
        self.apprise = apprise.Apprise()
        if not self.apprise.add(url):
            raise ValueError(f"{self.label}: not a valid Apprise URL")
        self.queue: asyncio.Queue[Push] = asyncio.Queue(capacity)


class PushNotifier:
    """``submit`` never blocks; ``start``/``stop`` own the worker tasks."""

    def __init__(
        self, urls: Sequence[str], *, capacity: int = 1000, retries: int = 3, backoff: float = 0.5
    ) -> None:
        self._dests = [_Destination(i, url, capacity) for i, url in enumerate(urls)]
        self._retries = retries
        self._backoff = backoff
        self._tasks: list[asyncio.Task[None]] = []
        self.counts = Counter[str]()  # sent, failed, dropped

    @property
    def queued(self) -> int:
        """Pushes waiting in the destinations' queues (read by /metrics)."""
        return sum(d.queue.qsize() for d in self._dests)

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        for ev in events:
            push = render(ev, on_shift.get(ev.alert_id))
            log.debug("%s %s %s: %s", ev.kind, ev.rule, ev.tag, ev.message)
            for dest in self._dests:
                if dest.queue.full():
                    dest.queue.get_nowait()
                    dest.queue.task_done()
                    self.counts["dropped"] += 1
                dest.queue.put_nowait(push)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(d), name=d.label) for d in self._dests]

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is queued (for up to ``grace`` seconds), then stop the workers."""
        try:
            await asyncio.wait_for(asyncio.gather(*(d.queue.join() for d in self._dests)), grace)
        except TimeoutError:
            log.warning(
                "notifier stopped with %d pushes undelivered", sum(d.queue.qsize() for d in self._dests)
            )
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, dest: _Destination) -> None:
        while True:
            push = await dest.queue.get()
            try:
                await self._send(dest, push)
            finally:
                dest.queue.task_done()

    async def _send(self, dest: _Destination, push: Push) -> None:
        delay = self._backoff
        for attempt in range(1, self._retries + 1):
            if await dest.apprise.async_notify(body=push.body, title=push.title, notify_type=push.kind):
                self.counts["sent"] += 1
                return
            if attempt < self._retries:
                await asyncio.sleep(delay)  # retry backoff, not synchronisation
                delay *= 2
        self.counts["failed"] += 1
        log.warning("%s: push failed after %d attempts: %s", dest.label, self._retries, push.title)


__all__ = ["Push", "PushNotifier", "render"]
