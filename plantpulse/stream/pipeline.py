"""The local stream: input log -> queue -> rules engine -> alerts to the store and the notifier.

Collectors deliver through ``sink`` (``stream.sink``): each chunk is appended to the fsync'd
spool first, which is the pipeline's input log and the store's feed alike, then queued. One
asyncio task drains the queue in micro-batches (up to ``batch_max`` samples or about
``batch_interval``) and evaluates them entry by entry, in spool order:

* live and historical samples go through the engine with the watermark after that entry;
  heartbeats only advance the watermark; markers are only shown (the store gets every sample
  from the spool, so nothing is written twice);
* the watermark is kept per source (each chunk's newest timestamp, never past its arrival
  time) and the engine gets the largest of them (docs/rules.md, "Watermark");
* alerts go out once per micro-batch: to the spool (and so the store) first, then to the
  notifier; historical ones are stored, never pushed; raises carry their trend.

Evaluating entry by entry makes the result a function of the spool alone, which is what
makes a restart exact: ``recover`` restores the engine snapshot (``stream.state``) and
re-evaluates the spool records after the position it reflects, before new data is taken.
Events that replay regenerates and that were already handed on before the crash (their alert
record is in the spool) are neither stored nor pushed again; a raise the notifier's outbox
does not know yet (the crash fell between the two) is still handed to it.

With approvals on (``rules``, docs/approvals.md) a newly approved rule version takes over at
the top of ``process``, a batch boundary, never during ``recover``: the engine is rebuilt by
``rules.swap``, the snapshot is saved at once with the closing events of the switch (so a crash
never re-evaluates records from before the switch by the new rules, and never loses those
events), then the closing events go out like live ones. Raises are stamped with the version
of their rule before they are handed on. A snapshot taken under another version than the live
one is not restored as it is but reloaded (``rules.resume``): a rule changed while the process
was down must not resume its old condition's state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from plantpulse.alerts import AlertEvent
from plantpulse.config import StreamConfig
from plantpulse.rules.engine import Engine
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store.records import KIND_ALERTS, KIND_INPUT, Route, decode_alerts, decode_input
from plantpulse.store.spool import Position, Record
from plantpulse.stream.queue import Entry, InputQueue
from plantpulse.stream.sink import InputLog, PipelineSink, QuarantineLog
from plantpulse.stream.state import Saved, StateFile
from plantpulse.stream.trend import TrendWindow
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)

__all__ = ["Notifier", "OnShift", "Pipeline", "PipelineStats", "Recovery", "Rules", "Writer"]


class Writer(InputLog, Protocol):
    """The spool writer's side the pipeline uses; it never raises on a store outage."""

    async def write_alert_events(
        self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]
    ) -> None: ...

    async def read_after(self, pos: Position | None, max_records: int = 512) -> list[Record]: ...

    async def retain(self, pos: Position) -> None: ...


class Notifier(Protocol):
    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        """Queue pushes for these events; must not block the pipeline."""


OnShift = Callable[[str, int], dict[str, list[str]]]
"""(asset, raised_at ns) -> role -> names on shift; the roster's resolution."""

Known = Callable[[Collection[str]], Awaitable[set[str]]]
"""Which of these alert ids the notifier already escalates (``Outbox.known``)."""

Swapped = tuple[Engine, list[AlertEvent]]
"""The engine of another rule version and the "cleared" events of the alerts the switch closes."""


class Rules(Protocol):
    """Approved rule versions (``plantpulse.approvals.live.LiveRules``, docs/approvals.md)."""

    @property
    def change(self) -> int | None:
        """The change that made the rules the engine runs (saved with each snapshot)."""

    def swap(self, engine: Engine) -> Swapped | None:
        """At a batch boundary: the engine of a newly approved version, or None."""

    async def resume(self, snapshot: dict[str, Any], change: int | None, tags: TagRegistry) -> Swapped | None:
        """At start: the live version's engine continuing ``snapshot``, taken under ``change``;
        None when that version's rules are unknown (then the snapshot is restored as it is)."""

    def stamp(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """The events, raises with the version of the rule that raised them."""


@dataclass
class PipelineStats:
    """Read-only counters for status pages and the demo summary."""

    batches: int = 0
    samples: int = 0
    bad_samples: int = 0
    historical: int = 0  # replayed from device buffers: evaluated and stored, not pushed
    markers: int = 0  # watchdog and gap markers: stored only
    heartbeats: int = 0
    raised: int = 0
    cleared: int = 0
    not_durable: int = 0  # samples the spool refused (full): evaluated, never stored
    backpressure_waits: int = 0
    snapshots: int = 0
    alert_latency_ms: list[float] = field(
        default_factory=list
    )  # wall time from batch taken to alert handed on


@dataclass(frozen=True)
class Recovery:
    """What ``recover`` found: the snapshot's position (None: none) and what it re-evaluated."""

    position: Position | None
    records: int
    samples: int
    events: int  # events the replay produced
    handed_on: int  # of them, new ones (the crash came before they were stored or pushed)
    seconds: float


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        tags: TagRegistry,
        writer: Writer,
        notifier: Notifier | None = None,
        *,
        config: StreamConfig | None = None,
        on_shift: OnShift | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_batch: Callable[[SampleBatch, list[AlertEvent]], None] | None = None,
        state: StateFile | None = None,
        known: Known | None = None,
        quarantine: QuarantineLog | None = None,
        clock: Callable[[], int] = time.time_ns,
        rules: Rules | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        self.rules = rules
        self.engine = engine
        self.tags = tags
        self.writer = writer
        self.notifier = notifier
        self.on_shift = on_shift
        self.on_alert = on_alert
        self.on_batch = on_batch  # observers such as the live board; must not block
        self.state = state
        self.known = known
        self.queue = InputQueue(self.config.queue_size)
        self.sink = PipelineSink(self.queue, writer, tags, clock=clock, quarantine=quarantine)
        self.stats = PipelineStats()
        self.watermarks: dict[str, int] = {}  # per source: newest sample or heartbeat, capped at arrival
        self.position: Position | None = None  # the last spool record the engine state includes
        self.first_evaluation: float | None = None  # time.monotonic() of the first live batch
        self._watermark: int | None = None
        self._trend = TrendWindow(max((r.for_ns for r in engine.rules), default=0))
        self._saved: Position | None = None
        self._next_snapshot = 0.0
        self._built = time.monotonic()

    @property
    def watermark(self) -> int | None:
        """The engine's watermark: the largest of the sources' (docs/rules.md)."""
        return self._watermark

    # -- running ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set, then drain what the queue holds, save the engine
        state and return."""
        linger = self.config.batch_interval / NS_PER_S
        self._next_snapshot = time.monotonic() + self.config.snapshot_interval / NS_PER_S
        while True:
            stopping = stop.is_set()
            entries = await self.queue.get_batch(self.config.batch_max, 0 if stopping else linger)
            if entries:
                await self.process(entries)
            if time.monotonic() >= self._next_snapshot:
                await self.save()
            if stopping and self.queue.empty:
                break
        self.stats.backpressure_waits = self.queue.waits
        await self.save()

    async def step(self) -> list[AlertEvent]:
        """Evaluate everything queued now as one micro-batch (tests step the pipeline this way)."""
        entries = await self.queue.get_batch(1 << 62, 0)
        return await self.process(entries)

    async def process(
        self, entries: Sequence[Entry], replayed: set[tuple[str, str]] | None = None
    ) -> list[AlertEvent]:
        """One micro-batch, entry by entry in spool order; returns the events it produced.

        With ``replayed`` (the restart's re-evaluation) nothing is observed, and events found in
        that set (alert id, kind) were handed on before the crash: they are not again. Otherwise
        a newly approved rule version takes over first (module docstring)."""
        started = time.perf_counter()
        events: list[AlertEvent] = []
        swapped = self.rules.swap(self.engine) if replayed is None and self.rules is not None else None
        if swapped is not None:
            self.engine, closed = swapped
            events = list(closed)
            self._fit_trend()
            await self.save(events, force=True)
        quiet: list[bool] = [False] * len(events)  # per event: historical, so stored but never pushed
        shown: list[SampleBatch] = []
        for entry in entries:
            pos = await entry.durable
            if pos is not None:
                self.position = pos
            elif entry.batch is not None:
                self.stats.not_durable += len(entry.batch)
            if entry.watermark is not None:
                self._advance(entry.source, entry.watermark)
            batch = entry.batch
            if entry.route == Route.HEARTBEAT:
                self.stats.heartbeats += 1
                w = self._watermark
                if w is not None and (self.engine.watermark is None or w > self.engine.watermark):
                    out = self.engine.advance(w)
                    events += out
                    quiet += [False] * len(out)
                continue
            assert batch is not None
            shown.append(batch)
            if entry.route == Route.MARKER:
                self.stats.markers += len(batch)
                continue
            out = self.engine.process(batch, self._watermark)
            self._trend.add(batch, self._watermark)
            events += out
            quiet += [entry.route == Route.HISTORICAL] * len(out)
            if entry.route == Route.HISTORICAL:
                self.stats.historical += len(batch)
        if events:
            events = self._trend.fill(events, {ev.tag: self.tags.id(ev.tag) for ev in events})
            if self.rules is not None:
                events = self.rules.stamp(events)
            await self._emit(events, quiet, started, replayed)
        if shown:
            batch = SampleBatch.concat(self.tags, shown)
            self.stats.batches += 1
            self.stats.samples += len(batch)
            self.stats.bad_samples += int(np.count_nonzero(batch.quality == Quality.BAD))
            if replayed is None:
                if self.first_evaluation is None:
                    self.first_evaluation = time.monotonic()
                    log.info(
                        "first live evaluation, %.0f ms after the pipeline was built",
                        (self.first_evaluation - self._built) * 1000,
                    )
                if self.on_batch is not None:
                    self.on_batch(batch, events)
        return events

    def _fit_trend(self) -> None:
        """The trend window to the longest ``for`` of the rules the engine runs now; the rows
        it holds stay, so a raise just after a switch still gets its whole trend."""
        self._trend.span = max((r.for_ns for r in self.engine.rules), default=0)

    def _advance(self, source: str, wm: int) -> None:
        prev = self.watermarks.get(source)
        if prev is None or wm > prev:
            self.watermarks[source] = wm
            if self._watermark is None or wm > self._watermark:
                self._watermark = wm

    async def _emit(
        self,
        events: list[AlertEvent],
        quiet: list[bool],
        started: float,
        replayed: set[tuple[str, str]] | None,
    ) -> None:
        again: list[AlertEvent] = []  # raises handed on before a crash: maybe not to the notifier
        if replayed is not None:
            pairs = list(zip(events, quiet, strict=True))
            again = [
                ev for ev, q in pairs if (ev.alert_id, ev.kind) in replayed and not q and ev.kind == "raised"
            ]
            pairs = [(ev, q) for ev, q in pairs if (ev.alert_id, ev.kind) not in replayed]
            events, quiet = [ev for ev, _ in pairs], [q for _, q in pairs]
        on_shift: dict[str, dict[str, list[str]]] = {}
        if self.on_shift is not None:
            for ev in (*events, *again):
                if ev.kind == "raised":
                    on_shift[ev.alert_id] = self.on_shift(ev.asset, ev.raised_at)
        if events:
            await self.writer.write_alert_events(events, on_shift)
        if self.notifier is not None:
            push = [ev for ev, q in zip(events, quiet, strict=True) if not q]
            if again and self.known is not None:
                known = await self.known({ev.alert_id for ev in again})
                push += [ev for ev in again if ev.alert_id not in known]
            if push:
                self.notifier.submit(push, on_shift)
        for ev in events:
            if ev.kind == "raised":
                self.stats.raised += 1
            else:
                self.stats.cleared += 1
            if self.on_alert is not None:
                self.on_alert(ev)
        if events:
            self.stats.alert_latency_ms.append((time.perf_counter() - started) * 1000)

    # -- state ------------------------------------------------------------------------------------

    async def save(self, closing: Sequence[AlertEvent] = (), *, force: bool = False) -> None:
        """Snapshot the engine with the position it reflects (atomically, fsync'd); then the
        spool may drop what both the store and the snapshot have. ``force``: even when the
        position has not moved (the rules have); ``closing``: a switch's events, not yet
        handed on (``recover`` hands them on if a crash comes first)."""
        self._next_snapshot = time.monotonic() + self.config.snapshot_interval / NS_PER_S
        pos = self.position
        if self.state is None or pos is None or (pos == self._saved and not force):
            return
        state = self.engine.snapshot()
        save = functools.partial(
            self.state.save, ruleset=None if self.rules is None else self.rules.change, closing=closing
        )
        await asyncio.to_thread(save, state, pos, dict(self.watermarks), time.time_ns())
        self._saved = pos
        self.stats.snapshots += 1
        await self.writer.retain(pos)

    async def recover(self) -> Recovery:
        """Restore the last snapshot and re-evaluate the spool records after it; call before
        collectors start. Without a snapshot every input record in the spool is evaluated."""
        started = time.monotonic()
        pos: Position | None = None
        closing: list[AlertEvent] = []
        reloaded = False
        if self.state is not None:
            loaded = await asyncio.to_thread(self.state.load)
            if loaded is not None:
                pos = loaded.position
                closing, reloaded = await self._restore(loaded)
                for source, wm in loaded.watermarks.items():
                    self._advance(source, wm)
                self.position = self._saved = pos
        handed: set[tuple[str, str]] = set()
        async for recs in self._records_after(pos):
            for rec in recs:
                if rec.kind == KIND_ALERTS:
                    handed.update((ev.alert_id, ev.kind) for ev in decode_alerts(rec.body)[0])
        records = samples = produced = 0
        raised, cleared = self.stats.raised, self.stats.cleared
        if closing:  # a switch's, before the records after it; those already handed on are not again
            await self._emit(closing, [False] * len(closing), time.perf_counter(), handed)
        async for recs in self._records_after(pos):
            entries = []
            for rec in recs:
                if rec.kind != KIND_INPUT:
                    continue
                inp = decode_input(rec.body, self.tags)
                done: asyncio.Future[Position | None] = asyncio.get_running_loop().create_future()
                done.set_result(rec.position)
                entries.append(Entry(inp.route, inp.source, inp.watermark, inp.batch, done))
            records += len(entries)
            samples += sum(len(e) for e in entries)
            produced += len(await self.process(entries, replayed=handed))
            self.position = recs[-1].position
        rec_stats = Recovery(
            position=pos,
            records=records,
            samples=samples,
            events=produced,
            handed_on=self.stats.raised - raised + self.stats.cleared - cleared,
            seconds=time.monotonic() - started,
        )
        if records or pos is not None:
            log.info(
                "engine state restored%s; %d spool records (%d samples) re-evaluated in %.2f s: "
                "%d alert events, %d of them new",
                "" if pos is None else f" at spool position {pos[0]}:{pos[1]}",
                records,
                samples,
                rec_stats.seconds,
                produced,
                rec_stats.handed_on,
            )
        self.stats.batches = self.stats.samples = self.stats.bad_samples = 0  # count this run's live data
        self.stats.historical = self.stats.markers = self.stats.heartbeats = 0
        if reloaded:  # the snapshot names the live version from now on
            await self.save(force=True)
        if self._saved is not None:
            await self.writer.retain(self._saved)  # the next snapshot (within snapshot_interval) moves it on
        return rec_stats

    async def _restore(self, saved: Saved) -> tuple[list[AlertEvent], bool]:
        """The engine from a snapshot: restored, or reloaded when it was taken under another
        rule version than the live one. Returns the closing events to hand on and whether it
        was reloaded."""
        closing = list(saved.closing)
        if self.rules is not None and saved.ruleset != self.rules.change:
            resumed = await self.rules.resume(saved.engine, saved.ruleset, self.tags)
            if resumed is not None:
                self.engine, closed = resumed
                self._fit_trend()
                return closing + closed, True
        self.engine.restore(saved.engine)
        return closing, False

    def _records_after(self, pos: Position | None) -> _Pages:
        return _Pages(self.writer, pos)


class _Pages:
    """Async iteration over the spool's records after a position, a few hundred at a time."""

    def __init__(self, writer: Writer, pos: Position | None) -> None:
        self.writer = writer
        self.pos = pos

    def __aiter__(self) -> _Pages:
        return self

    async def __anext__(self) -> list[Record]:
        recs = await self.writer.read_after(self.pos, 512)
        if not recs:
            raise StopAsyncIteration
        self.pos = recs[-1].position
        return recs
