"""A Tansu broker per test, the deployment's plant.yaml, and roles run as real subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from plantpulse.config import PlantConfig, load_config
from plantpulse.samples import Sample
from plantpulse.scaleout.collect import Batcher, KafkaSink, publish, samples_producer
from plantpulse.scaleout.partitioning import Partitioner
from plantpulse.scaleout.tansu import TansuBroker
from plantpulse.scaleout.topics import ensure_topics
from plantpulse.simulators.scenario import opcua_source
from tests.scaleout import scenario as sc

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T]], limit: float) -> T:
    """Poll ``check`` until it returns something truthy: the roles are other processes writing
    to the store or the brokers, so there is no event to await here."""
    async with asyncio.timeout(limit):
        while True:
            if value := await check():
                return value
            await asyncio.sleep(0.2)


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


def write_plant(tmp_path: Path, broker: TansuBroker, **kafka: object) -> Path:
    """plant.yaml of the demo line on a deployment: sources (never read by these tests: the
    feeder stands in for the collectors), demo rules, SQLite store, the broker."""
    source = opcua_source(sc.scenario(), "opc.tcp://127.0.0.1:4840").model_dump(
        mode="json", exclude_none=True
    )
    doc = {
        "site": {"name": "焊装车间"},
        "sources": [source],
        "rules": [str(sc.DEMO / "weld-rules.yaml")],
        "store": {"url": f"sqlite:///{tmp_path / 'plant.db'}"},
        "kafka": {
            "brokers": [broker.bootstrap],
            "partitions": 4,
            "session_timeout": "3s",
            "checkpoint": "200ms",
            "linger": "20ms",
            "heartbeat": "200ms",
            **kafka,
        },
    }
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def plant_of(path: Path) -> PlantConfig:
    return load_config(path).plant


async def create_topics(plant: PlantConfig) -> None:
    assert plant.kafka is not None
    states = await ensure_topics(plant.kafka, create=True)
    assert all(s.ok for s in states), [s.status for s in states]


class Role:
    """``plantpulse run --role ROLE -c plant.yaml`` in a subprocess, its log lines collected."""

    def __init__(self, role: str, config: Path, name: str | None = None, extra: Sequence[str] = ()) -> None:
        self.role, self.config, self.extra = role, config, list(extra)
        self.name = name or role
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def start(self) -> Role:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plantpulse", "run", "--role", self.role, "-c", str(self.config),
            *self.extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._new.set()

    async def wait_for(self, pattern: str, limit: float = 30.0) -> re.Match[str]:
        """The first log line (from the start) matching ``pattern``."""
        rx = re.compile(pattern)
        async with asyncio.timeout(limit):
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if m := rx.search(line):
                        return m
                seen = len(self.lines)
                if (
                    self.proc is not None
                    and self.proc.returncode is not None
                    and self._reader
                    and self._reader.done()
                ):
                    raise AssertionError(
                        f"{self.name} exited {self.proc.returncode}:\n" + "\n".join(self.lines[-30:])
                    )
                self._new.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new.wait(), 0.5)

    def partitions(self) -> list[int]:
        """The partitions it evaluates according to its last assignment line."""
        found = [line for line in self.lines if "evaluating partitions" in line]
        return [int(x) for x in re.findall(r"\d+", found[-1].rpartition("partitions")[2])] if found else []

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self, limit: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(limit):
            rc = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return rc


@contextlib.asynccontextmanager
async def roles(*items: Role) -> AsyncIterator[Sequence[Role]]:
    """Start the roles; on the way out stop those still running (kill if they hang)."""
    try:
        for r in items:
            await r.start()
        yield items
    except BaseException:
        for r in items:  # shown by pytest with the failure
            print(f"--- {r.name} ---", *r.lines[-400:], sep="\n")
        raise
    finally:
        await asyncio.gather(*(_stop(r) for r in items if r.proc is not None and r.proc.returncode is None))


async def _stop(role: Role) -> None:
    try:
        await role.stop(20)
    except TimeoutError:
        role.kill()
        assert role.proc is not None
        await role.proc.wait()


class Feeder:
    """The collect role's sink and publisher, fed directly with samples (the collectors'
    protocol side is tested elsewhere; here the input must be exact and paced by the test)."""

    def __init__(self, plant: PlantConfig) -> None:
        assert plant.kafka is not None
        self.cfg = plant.kafka
        tags = [t.name for src in plant.sources for t in src.tags]
        self.sink = KafkaSink(Batcher(Partitioner(tags, sc.rules(), self.cfg.partitions)), 100_000)
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Feeder:
        self.producer = samples_producer(self.cfg)
        await self.producer.start()
        self._task = asyncio.create_task(publish(self.sink, self.producer, self.cfg, self._stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await self._task
        await self.producer.stop()

    async def feed(self, samples: Sequence[Sample], chunk: int = 2_000) -> None:
        for i in range(0, len(samples), chunk):
            await self.sink.put(samples[i : i + chunk])
        await self.sink.wait_sent()
