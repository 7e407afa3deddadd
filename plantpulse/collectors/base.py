"""The collector contract (Telegraf's two shapes) and the narrow sink collectors write to.

A polled collector is asked to ``read`` on a schedule; a streaming collector ``run``s and
pushes what it receives. Neither sleeps, retries nor touches the store: the runner owns
scheduling, timeouts, reconnect with backoff, availability, log-once-per-outage, the per-tag
watchdog and reconnect gap markers.

``Sink`` stays three methods, so any recorder or test double is a sink. Two optional
capabilities route data that must not be treated as live (``QualitySink``): historical samples
(replayed from a device buffer: evaluated and stored, never pushed) and markers (watchdog
staleness, reconnect gaps: stored and shown, never evaluated). ``put_historical`` and
``put_markers`` below deliver through them when the sink has them and fall back to ``put``
otherwise, which is right for a sink that does not evaluate rules. A third one
(``QuarantineSink``) keeps samples the runner refused (``collectors.admission``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from plantpulse.errors import SourceError
from plantpulse.samples import Sample


class Sink(Protocol):
    """Where collectors deliver. ``put`` waits when the pipeline is full (backpressure)."""

    async def put(self, samples: Sequence[Sample]) -> None: ...

    def heartbeat(self, source: str, ts: int) -> None:
        """The source is alive at ``ts`` (ns) with nothing changed: advances the watermark."""

    def error(self, source: str, error: SourceError) -> None:
        """A failure worth counting; the runner logs once per cause."""


@runtime_checkable
class QualitySink(Sink, Protocol):
    """A sink that also tells live data from history and markers (the pipeline's, the runner's)."""

    async def put_historical(self, samples: Sequence[Sample]) -> None:
        """Replayed from a device buffer: evaluated and stored, never pushed live."""

    async def put_markers(self, samples: Sequence[Sample]) -> None:
        """Watchdog and gap markers: stored and shown, never evaluated."""


@runtime_checkable
class QuarantineSink(Protocol):
    """A sink that keeps what the runner did not admit (the pipeline's: ``quarantine.jsonl``)."""

    def quarantine(self, source: str, cause: str, samples: Sequence[Sample]) -> None:
        """Samples refused for ``cause`` (``collectors.admission``): kept for inspection only."""


async def put_historical(sink: Sink, samples: Sequence[Sample]) -> None:
    """``sink.put_historical`` when the sink has it, else ``sink.put``."""
    if isinstance(sink, QualitySink):
        await sink.put_historical(samples)
    else:
        await sink.put(samples)


async def put_markers(sink: Sink, samples: Sequence[Sample]) -> None:
    """``sink.put_markers`` when the sink has it, else ``sink.put``."""
    if isinstance(sink, QualitySink):
        await sink.put_markers(samples)
    else:
        await sink.put(samples)


class PolledCollector(Protocol):
    name: str

    async def read(self) -> Sequence[Sample]:
        """One poll of every tag; raise SourceUnavailable/AuthenticationError on failure."""

    async def close(self) -> None: ...


class StreamingCollector(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Connect, subscribe and deliver until cancelled; raise SourceError when the
        connection is lost (the runner reconnects with backoff and calls ``run`` again)."""

    async def close(self) -> None: ...
