"""Helpers for the MQTT tests: unique topic prefixes, sample comparison, and a private
Mosquitto process (for broker restarts and TLS) that never touches the system service."""

from __future__ import annotations

import asyncio
import getpass
import math
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plantpulse.collectors.base import Sink
from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.samples import Sample


def unique(prefix: str = "pptest") -> str:
    """A topic prefix / client id no parallel test run shares."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def same(a: Sequence[Sample], b: Sequence[Sample]) -> bool:
    """Equal as multisets of (ts, tag, value, quality), NaN equal to NaN."""

    def key(s: Sample) -> tuple[int, str, float, int]:
        return (s.ts, s.tag, -math.inf if math.isnan(s.value) else s.value, int(s.quality))

    return sorted(map(key, a)) == sorted(map(key, b))


def data(samples: Sequence[Sample]) -> list[Sample]:
    """Without gap markers (``_gaps/...``)."""
    return [s for s in samples if not s.tag.startswith("_gaps/")]


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        reason = "the mosquitto binary is not installed (apt-get install mosquitto)"
        if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} and PLANTPULSE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(reason)
    return path


class Mosquitto:
    """Our own ``mosquitto -c`` on a free loopback port, with persistence in a temp dir."""

    def __init__(self, workdir: Path, port: int, extra: str = "") -> None:
        self.binary = mosquitto_binary()
        self.workdir = workdir
        self.port = port
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {port} 127.0.0.1\n"
            f"user {getpass.getuser()}\n"  # root would switch to 'mosquitto'
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "log_dest stderr\n"
            "max_queued_messages 100000\n" + (extra or "allow_anonymous true\n"),
            encoding="utf-8",
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary, "-c", str(self.conf), stdout=log, stderr=log
            )
        # every listener's port opening is the readiness signal (TLS listeners open after the plain one)
        ports = [
            int(line.split()[1])
            for line in self.conf.read_text().splitlines()
            if line.startswith("listener ")
        ]
        deadline = time.monotonic() + 10
        while ports and time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", ports[0])
            except OSError:
                await asyncio.sleep(0.05)
                continue
            w.close()
            await w.wait_closed()
            ports.pop(0)
        if ports:
            raise RuntimeError(f"mosquitto did not start listening on {ports}")

    async def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (sessions, queued QoS 1) on the way out."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@asynccontextmanager
async def collecting(source: MqttSource, sink: Sink) -> AsyncIterator[MqttCollector]:
    """Run a collector until the block ends (cancelled: a clean stop); it is connected and
    subscribed on entry."""
    collector = MqttCollector(source)
    task = asyncio.create_task(collector.run(sink))
    ready = asyncio.create_task(collector.subscribed.wait())
    await asyncio.wait([task, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()
    assert collector.subscribed.is_set()
    try:
        yield collector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
