"""The approved rules of a running pipeline: watch the change log, swap at a batch boundary.

    live = await LiveRules.start(plant, log, now=t)      # baseline adopted; live.ruleset.rules to run
    asyncio.create_task(live.run(stop))                  # polls the log every approvals.poll
    swap = live.at_boundary(engine)                      # the pipeline, between two batches
    if swap: engine = swap.engine; emit(swap.closed)     # then every event: live.stamp(events)
    engine, closed = await live.resume(snapshot, change, tags)  # at start, a snapshot of another change

``run`` notices a new activation (``History.current`` moved), compiles the live texts and holds
the new set; nothing touches the engine there. ``at_boundary`` is synchronous and is called by
the pipeline between batches, so a batch is evaluated entirely by one version: it builds the
new engine with ``reload.reload`` from the engine's snapshot. ``run`` then records the switch
in the log (``applied``: which process, at which watermark, what was kept, started fresh,
closed). A live set that does not compile (it passed validation when proposed, so only a
newer plantpulse could refuse it) is logged and skipped: the pipeline keeps the version it has.

``resume`` is the same reload at start, when the engine snapshot was taken under another
change than the live one (approved while the process was down, or a crash between a switch
and its snapshot): the set of that change is read back from the log.

``stamp`` sets ``rule_version`` on raise events: the change that last made each rule what it
is, so every alert records the rule version that raised it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.changes import History, as_of, fold
from plantpulse.approvals.log import Entry
from plantpulse.approvals.reload import Reloaded, reload
from plantpulse.approvals.ruleset import RuleSet
from plantpulse.approvals.service import Plant, adopt, record
from plantpulse.errors import ConfigError, StoreError
from plantpulse.rules.engine import Engine
from plantpulse.rules.model import Rule
from plantpulse.samples import TagRegistry
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)

__all__ = ["LiveRules", "process_name"]


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ruleset_of(h: History) -> RuleSet:
    return RuleSet.from_texts(h.versions("rules"), h.rule_versions, h.current)


class LiveRules:
    def __init__(
        self,
        plant: Plant,
        log_: ChangeLog,
        ruleset: RuleSet,
        *,
        seen: int = 0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.plant = plant
        self.clock = clock
        self.log = log_
        self.ruleset = ruleset
        self.process = process_name()
        self._seen = seen  # the log head last read
        self._next: RuleSet | None = None
        self._applied: list[tuple[RuleSet, Reloaded]] = []
        self.swaps = 0
        self.on_change: Callable[[RuleSet], None] | None = None
        """Called (in a thread) with each set that went live here: runtime caches it."""

    @classmethod
    async def start(
        cls, plant: Plant, log_: ChangeLog, *, now: int, clock: Callable[[], int] = time.time_ns
    ) -> LiveRules:
        """Adopt files the log does not know yet (``service.adopt``) and load the live set."""
        h = await adopt(plant, log_, now=now)
        rs = ruleset_of(h)
        disk = plant.disk()
        for name, text in h.versions("rules").items():
            if disk.get(name) != text:
                log.warning(
                    "%s on disk differs from the approved version (change #%d), which runs:"
                    " propose it with plantpulse rules propose",
                    name,
                    h.live[name].change,
                )
        return cls(plant, log_, rs, seen=h.head, clock=clock)

    @property
    def rules(self) -> list[Rule]:
        return list(self.ruleset.rules)

    @property
    def change(self) -> int | None:
        """The change that made the running set what it is."""
        return self.ruleset.change

    @property
    def pending(self) -> RuleSet | None:
        """The set waiting for the next batch boundary, if any."""
        return self._next

    async def poll(self) -> bool:
        """Read the log if it moved; True when a new set waits for the next boundary."""
        await self.log.open()  # no-op when open; opens it late when the database was down at start
        await self.flush()
        head = await self.log.head()
        if head == self._seen:
            return self._next is not None
        h = fold(await self.log.records())
        self._seen = h.head
        target = self._next.change if self._next is not None else self.ruleset.change
        if h.current is not None and h.current != target:
            try:
                self._next = ruleset_of(h)
            except ConfigError as e:
                log.error(  # noqa: TRY400 - the problems are the message, a traceback adds nothing
                    "approved change #%d does not compile here; keeping the running rules: %s", h.current, e
                )
            else:
                log.info("approved change #%d: the pipeline switches at the next batch", h.current)
        return self._next is not None

    def at_boundary(self, engine: Engine) -> Reloaded | None:
        """Between two batches: the engine of the newly approved set, if there is one."""
        new = self._next
        if new is None:
            return None
        self._next = None
        r = reload(engine.snapshot(), self.ruleset, new, engine.tags)
        self.ruleset = new
        self._switched(new, r, "switched to")
        return r

    def _switched(self, new: RuleSet, r: Reloaded, how: str) -> None:
        self._applied.append((new, r))
        self.swaps += 1
        log.info(
            "rules %s change #%s: %d kept, %d carried, %d fresh, %d removed, %d alerts closed",
            how, new.change, len(r.kept), len(r.carried), len(r.fresh), len(r.removed), len(r.closed),
        )  # fmt: skip

    async def resume(
        self, snapshot: Mapping[str, Any], change: int | None, tags: TagRegistry
    ) -> tuple[Engine, list[AlertEvent]] | None:
        """At start: the engine of the running set continuing ``snapshot``, taken under
        ``change``; None when that set is unknown (approvals were off then, or the log cannot
        be read): the caller restores the snapshot as it is."""
        if change is None or change == self.change:
            return None
        try:
            await self.log.open()
            h = as_of(await self.log.records(), change)
            old = None if h is None else ruleset_of(h)
        except (StoreError, ConfigError) as e:
            log.warning("rules of change #%d unknown (%s): the engine snapshot is restored as is", change, e)
            return None
        if old is None:
            log.warning("change #%d is not in the change log: the engine snapshot is restored as is", change)
            return None
        r = reload(snapshot, old, self.ruleset, tags)
        self._switched(self.ruleset, r, f"reloaded from change #{change} to")
        return r.engine, r.closed

    def swap(self, engine: Engine) -> tuple[Engine, list[AlertEvent]] | None:
        """``at_boundary`` in the shape ``stream.pipeline.Rules`` asks for."""
        r = self.at_boundary(engine)
        return None if r is None else (r.engine, r.closed)

    def stamp(self, events: Sequence[AlertEvent]) -> list[AlertEvent]:
        """Raise events with the version of the rule that raised them."""
        v = self.ruleset.versions
        return [replace(e, rule_version=v.get(e.rule)) if e.kind == "raised" else e for e in events]

    async def flush(self) -> None:
        """Record the switches made since the last call (``applied``) and cache the live set."""
        done, self._applied = self._applied, []
        if not done:
            return
        if self.on_change is not None:
            await asyncio.to_thread(self.on_change, done[-1][0])
        entries = [
            Entry(
                rs.change or 0, self.clock(), "applied", "pipeline", {"process": self.process, **r.summary()}
            )
            for rs, r in done
            if rs.change is not None
        ]
        try:
            await record(self.log, self.plant, lambda _: entries)
        except Exception:
            self._applied = done + self._applied  # try again at the next poll
            raise

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``approvals.poll`` until ``stop``."""
        every = self.plant.approvals.poll / NS_PER_S
        while not stop.is_set():
            try:
                await self.poll()
            except Exception:  # a store outage must not end the run: the rules in force go on
                log.exception("approved rules: cannot read the change log; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
