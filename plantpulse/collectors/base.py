"""The collector contract (Telegraf's two shapes) and the narrow sink collectors write to.

A polled collector is asked to ``read`` on a schedule; a streaming collector ``run``s and
pushes what it receives. Neither sleeps, retries nor touches the store: the runner owns
scheduling, timeouts, reconnect with backoff, availability and log-once-per-outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from plantpulse.errors import SourceError
from plantpulse.samples import Sample


class Sink(Protocol):
    """Where collectors deliver. ``put`` waits when the pipeline is full (backpressure)."""

    async def put(self, samples: Sequence[Sample]) -> None: ...

    def heartbeat(self, source: str, ts: int) -> None:
        """The source is alive at ``ts`` (ns) with nothing changed: advances the watermark."""

    def error(self, source: str, error: SourceError) -> None:
        """A failure worth counting; the runner logs once per cause."""


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
