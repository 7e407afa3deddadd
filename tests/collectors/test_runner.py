"""The runner against in-process collector doubles: backoff, auth, log-once, polling, status."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence

import pytest
from collector_helpers import RecordingSink

from plantpulse.collectors.errors import TagError
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.errors import AuthenticationError, SourceUnavailable
from plantpulse.samples import Quality, Sample


class ScriptedStream:
    """A streaming collector that plays a script: each entry is an exception to raise, or a
    list of samples to deliver before waiting for cancellation."""

    name = "press-1"
    address = "opc.tcp://press:4840"

    def __init__(self, script: list[BaseException | list[Sample]]) -> None:
        self.script = script
        self.closed = False
        self.runs = 0

    async def run(self, sink: object) -> None:
        self.runs += 1
        step = self.script.pop(0) if self.script else []
        if isinstance(step, BaseException):
            raise step
        await sink.put(step)  # type: ignore[attr-defined]
        sink.heartbeat(self.name, 1)  # type: ignore[attr-defined]
        if self.script:
            raise SourceUnavailable(self.name, self.address, "connection lost")
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


class RecordingSleep:
    """Injected sleep: records each delay, returns at once, and stops the runner after ``n``."""

    def __init__(self, n: int) -> None:
        self.delays: list[float] = []
        self.n = n
        self.done = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) >= self.n:
            self.done.set()
            await asyncio.Event().wait()


def unavailable(why: str = "connection refused") -> SourceUnavailable:
    return SourceUnavailable("press-1", "opc.tcp://press:4840", why)


async def run_until(runner: CollectorRunner, event: asyncio.Event) -> None:
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        await event.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_backoff_grows_caps_and_logs_once(
    sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    collector = ScriptedStream([unavailable() for _ in range(8)])
    sleep = RecordingSleep(8)
    backoff = Backoff(initial=1, maximum=10, factor=2, jitter=0)
    runner = CollectorRunner(collector, sink, backoff=backoff, sleep=sleep)
    with caplog.at_level(logging.DEBUG, logger="plantpulse.collectors.runner"):
        await run_until(runner, sleep.done)
    assert sleep.delays == [1, 2, 4, 8, 10, 10, 10, 10]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["press-1 (opc.tcp://press:4840): unavailable: connection refused"]
    status = runner.status()
    assert status.available is False and status.errors == {"unavailable": 8} and status.reconnects == 7
    assert collector.closed


def test_jitter_stays_within_bounds() -> None:
    backoff = Backoff(initial=2, maximum=60, jitter=0.25)
    rng = random.Random(1)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(12 <= d <= 20 for d in delays) and len(set(delays)) > 100


async def test_authentication_is_retried_slowly(sink: RecordingSink) -> None:
    refused = AuthenticationError("press-1", "opc.tcp://press:4840", "refused: BadUserAccessDenied")
    sleep = RecordingSleep(3)
    runner = CollectorRunner(
        ScriptedStream([refused, refused, refused]), sink, backoff=Backoff(jitter=0), sleep=sleep
    )
    await run_until(runner, sleep.done)
    assert all(d >= 60 for d in sleep.delays)
    assert runner.status().errors == {"authentication": 3}


async def test_recovery_logged_once_and_backoff_reset(
    sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    good = [Sample(1, "line1/press/force", 1.0)]
    collector = ScriptedStream([unavailable(), unavailable(), good, unavailable(), good])
    sleep = RecordingSleep(10)
    runner = CollectorRunner(
        collector, sink, backoff=Backoff(initial=1, jitter=0), sleep=sleep, wallclock=lambda: 99
    )
    caplog.set_level(logging.INFO, logger="plantpulse.collectors.runner")
    task = asyncio.create_task(runner.run())
    await sink.wait_for(lambda s: len(s.samples) == 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "plantpulse.collectors.runner"]
    assert sum("unavailable" in m for m in messages) == 2  # two outages
    assert sum("available again" in m for m in messages) == 2
    # after data flowed, the backoff starts over
    assert sleep.delays == [1, 2, 1, 2]
    status = runner.status()
    assert status.available is True and status.samples == 2 and status.heartbeats == 2


async def test_tag_errors_are_counted_not_fatal(sink: RecordingSink) -> None:
    class OneBadTag(ScriptedStream):
        async def run(self, sink: object) -> None:
            sink.error(self.name, TagError(self.name, self.address, "tag x: node ns=2;s=x: BadNodeIdUnknown"))  # type: ignore[attr-defined]
            await super().run(sink)

    runner = CollectorRunner(OneBadTag([[Sample(1, "a/b", 2.0)]]), sink, wallclock=lambda: 99)
    task = asyncio.create_task(runner.run())
    await sink.wait_for(lambda s: bool(s.samples))
    assert runner.status().errors == {"tag": 1} and runner.status().available
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Poller:
    name = "modbus-1"
    address = "tcp://10.0.0.5:502"

    def __init__(self, results: list[Sequence[Sample] | BaseException | None]) -> None:
        self.results = results
        self.closed = False

    async def read(self) -> Sequence[Sample]:
        result = self.results.pop(0) if self.results else []
        if result is None:
            await asyncio.Event().wait()  # hangs: the runner's timeout must end it
            return []
        if isinstance(result, BaseException):
            raise result
        return result

    async def close(self) -> None:
        self.closed = True


async def test_polled_failure_marks_tags_bad(sink: RecordingSink) -> None:
    ok = [Sample(5, "line1/m/p", 3.0)]
    poller = Poller([ok, SourceUnavailable("modbus-1", "tcp://10.0.0.5:502", "connection refused"), None, ok])
    sleep = RecordingSleep(4)
    runner = CollectorRunner(
        poller,
        sink,
        interval=1.0,
        timeout=0.05,
        tags=["line1/m/p", "line1/m/q"],
        backoff=Backoff(initial=2, jitter=0),
        sleep=sleep,
        wallclock=lambda: 99,
    )
    await run_until(runner, sleep.done)
    bad = [s for s in sink.samples if s.quality == Quality.BAD]
    assert [(s.ts, s.tag) for s in bad] == [(99, "line1/m/p"), (99, "line1/m/q")] * 2
    assert all(math.isnan(s.value) for s in bad)
    assert sleep.delays[1:3] == [2, 4]  # failing reads back off (never faster than the interval)
    status = runner.status()
    assert status.errors == {"unavailable": 2} and status.bad_samples == 4 and status.samples == 6
    assert "timed out" in (status.last_error or "")
    assert poller.closed


async def test_reconnected_counts_connections_regained_not_attempts(sink: RecordingSink) -> None:
    """What /metrics exports as ``plantpulse_source_reconnects_total``: a first connection that
    needed retries is no reconnection; a lost one that took three attempts to regain is one."""
    good = [Sample(1, "line1/press/force", 1.0)]
    collector = ScriptedStream([unavailable(), good, unavailable(), unavailable(), good])
    runner = CollectorRunner(
        collector, sink, backoff=Backoff(initial=1, jitter=0), sleep=RecordingSleep(10), wallclock=lambda: 99
    )
    task = asyncio.create_task(runner.run())
    await sink.wait_for(lambda s: len(s.samples) == 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    status = runner.status()
    assert (status.reconnected, status.reconnects) == (1, 4)
