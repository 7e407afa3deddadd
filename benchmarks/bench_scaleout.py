"""Scale-out on Kafka: end-to-end samples/s with 1 and 2 evaluate workers, their samples per CPU
second against the single-process engine, and recovery after a worker's SIGKILL.

    .venv/bin/python benchmarks/bench_scaleout.py [--tags 10000] [--seconds 60] [--partitions 8]

Everything runs on this machine: a Tansu broker on loopback (fresh per measurement), the
evaluate workers as ``plantpulse run --role evaluate`` subprocesses, and this process as the
collectors (the workload of bench_engine.py's ``steady``: N tags at 10 Hz, 3 glob rules,
published as one binary batch per partition per 100 ms tick, as the collect role does).

* throughput: the workers have joined; every message is published at once, then one sample
  per partition of a sentinel tag that raises an alert; the clock stops when the alerts
  topic holds all of them (every partition evaluated to its end);
* CPU: the workers' user + system time over that span (/proc), against the engine alone
  evaluating the same samples in 100 ms batches in this process (``time.process_time``), and
  against the single-process pipeline's evaluation path (``Pipeline.step`` on the Sample
  lists collectors hand over, store writes dropped);
* recovery: 2 workers, data flowing at 10 ticks/s for 8 s (a checkpoint was written); one
  worker is SIGKILLed; the time until the other starts evaluating a partition it took over.
  The group notices a dead member after ``kafka.session_timeout`` (3 s here, 10 s by
  default); Tansu then waits 3 s for members to join; both dominate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _common import RULES_YAML
from bench_engine import make_batches

from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.rules.model import Rule
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.scaleout.client import aiokafka_options
from plantpulse.scaleout.collect import samples_producer
from plantpulse.scaleout.config import KafkaConfig
from plantpulse.scaleout.partitioning import Partitioner
from plantpulse.scaleout.tansu import TansuBroker
from plantpulse.scaleout.topics import ensure_topics
from plantpulse.scaleout.wire import Route, SamplesWriter, decode_alert, encode_samples_message

CLK = os.sysconf("SC_CLK_TCK")


def rounds(n_tags: int, seconds: float) -> tuple[TagRegistry, list[SampleBatch]]:
    """One batch per 100 ms tick (every tag once): what a collector flushes per linger."""
    tags = TagRegistry()
    return tags, make_batches(tags, n_tags, seconds, "steady")


SENTINEL = '  - {id: sentinel, tag: "bench/*/end", above: 0, severity: low}\n'


def bench_rules() -> list[Rule]:
    """bench_engine.py's 3 glob rules and the sentinel (which no workload tag matches)."""
    return load_rules_text(RULES_YAML + SENTINEL, "bench.yaml")


def messages(tags: TagRegistry, batches: list[SampleBatch], partitions: int) -> list[tuple[int, bytes]]:
    """Per tick, one message per partition; at the end one sentinel sample per partition."""
    part = Partitioner(tags.names, bench_rules(), partitions)
    of_tag = np.array([part.partition(tags.name(i)) for i in range(len(tags))], dtype=np.int32)
    out = []
    writer = SamplesWriter()
    for b in batches:
        wm = int(b.ts.max())
        where = of_tag[b.tag]
        for p in range(partitions):
            out.append((p, writer.write(Route.LIVE, wm, b.take(where == p))))
    return out


def sentinels(tags: TagRegistry, partitions: int, ts: int, prefix: str) -> list[tuple[int, bytes]]:
    """One sample per partition of a tag that raises an alert at once (one tag per prefix)."""
    part = Partitioner([], bench_rules(), partitions)
    out: dict[int, bytes] = {}
    i = 0
    while len(out) < partitions:
        name = f"bench/{prefix}{i}/end"
        p = part.partition(name)
        if p not in out:
            batch = SampleBatch.make(tags, [ts], [tags.id(name)], [1.0])
            out[p] = encode_samples_message(Route.LIVE, ts, batch)
        i += 1
    return sorted(out.items())


def engine_cpu_rate(n_tags: int, seconds: float) -> float:
    """Samples per CPU second of the engine alone, 100 ms batches (the single-process shape)."""
    tags = TagRegistry()
    ticks = make_batches(tags, n_tags, seconds, "steady")
    eng = Engine(bench_rules(), tags)
    eng.process(ticks[0])
    t = time.process_time()
    for b in ticks[1:]:
        eng.process(b)
    return sum(len(b) for b in ticks[1:]) / (time.process_time() - t)


def pipeline_cpu_rate(n_tags: int, seconds: float) -> float:
    """Samples per CPU second of the single-process pipeline's path: each 100 ms tick put into
    its sink (spooled, without fsync: the spool record is also what feeds the store) and
    evaluated by ``Pipeline.step``; the store is never opened, so what the spool hands it is
    refused (not counted: logging is off meanwhile)."""
    import logging

    from plantpulse.config import SpoolConfig
    from plantpulse.store.spool import SpoolWriter
    from plantpulse.store.sqlite import SQLiteStore
    from plantpulse.stream.pipeline import Pipeline

    tags = TagRegistry()
    ticks = [b.samples() for b in make_batches(tags, n_tags, seconds, "steady")]

    async def feed(tmp: Path) -> float:
        store = SQLiteStore(f"sqlite:///{tmp / 'p.db'}")
        async with SpoolWriter(store, SpoolConfig(dir=tmp / "spool", fsync=False), open_store=False) as w:
            pipe = Pipeline(Engine(bench_rules(), tags), tags, w)
            await pipe.sink.put(ticks[0])
            await pipe.step()
            t = time.process_time()
            for tick in ticks[1:]:
                await pipe.sink.put(tick)
                await pipe.step()
            return time.process_time() - t

    logging.disable(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return sum(len(t) for t in ticks[1:]) / asyncio.run(feed(Path(tmp)))
    finally:
        logging.disable(logging.NOTSET)


def write_plant(tmp: Path, broker: TansuBroker, partitions: int) -> Path:
    (tmp / "rules.yaml").write_text(RULES_YAML + SENTINEL, encoding="utf-8")
    doc = {
        "rules": ["rules.yaml"],
        "store": {"url": f"sqlite:///{tmp / 'unused.db'}"},
        "kafka": {
            "brokers": [broker.bootstrap],
            "partitions": partitions,
            "session_timeout": "3s",
        },
    }
    (tmp / "plant.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return tmp / "plant.yaml"


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK


class Worker:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.lines: list[tuple[float, str]] = []

    async def start(self) -> Worker:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plantpulse", "run", "--role", "evaluate", "-c", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))

    def partitions(self) -> list[int]:
        found = [line for _, line in self.lines if "evaluating partitions" in line]
        return [int(x) for x in re.findall(r"\d+", found[-1].rpartition("partitions")[2])] if found else []

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


async def settled(workers: list[Worker], partitions: int) -> None:
    async with asyncio.timeout(120):
        while True:
            got = [w.partitions() for w in workers]
            if all(got) and sorted(p for g in got for p in g) == list(range(partitions)):
                return
            await asyncio.sleep(0.1)


async def sentinels_raised(cfg: KafkaConfig, ready: asyncio.Event, prefix: str) -> None:
    """Until the alerts topic holds the sentinel alert of ``prefix`` from every partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**aiokafka_options(cfg), enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(cfg.topics.alerts, p) for p in range(cfg.topics.alert_partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ready.set()
    seen: set[str] = set()
    try:
        while len(seen) < cfg.partitions:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                tags = (decode_alert(m.value).event.tag for m in msgs if b'"sentinel"' in m.value)
                seen |= {t for t in tags if t.startswith(f"bench/{prefix}")}
    finally:
        await consumer.stop()


async def send(cfg: KafkaConfig, msgs: list[tuple[int, bytes]], pace: float | None = None) -> None:
    producer = samples_producer(cfg)
    await producer.start()
    try:
        if pace is None:
            futures = [await producer.send(cfg.topics.samples, v, partition=p) for p, v in msgs]
            await asyncio.gather(*futures)
        else:
            for i in range(0, len(msgs), cfg.partitions):
                for p, v in msgs[i : i + cfg.partitions]:
                    await producer.send(cfg.topics.samples, v, partition=p)
                await asyncio.sleep(pace)
    finally:
        await producer.stop()


async def until_sentinels(cfg: KafkaConfig, msgs: list[tuple[int, bytes]], prefix: str) -> None:
    ready = asyncio.Event()
    done = asyncio.create_task(sentinels_raised(cfg, ready, prefix))
    await ready.wait()
    await asyncio.gather(send(cfg, msgs), done)


async def throughput(
    n_workers: int, tags: TagRegistry, batches: list[SampleBatch], partitions: int
) -> dict[str, float]:
    """The first tick (stream creation, which the engine's baseline leaves out too) goes
    before the clock starts."""
    warm = messages(tags, batches[:1], partitions) + sentinels(
        tags, partitions, int(batches[0].ts.max()), "w"
    )
    msgs = messages(tags, batches[1:], partitions)
    msgs += sentinels(tags, partitions, int(batches[-1].ts.max()), "s")
    samples = sum(len(b) for b in batches[1:])
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        config = write_plant(Path(tmp), broker, partitions)
        cfg = KafkaConfig.model_validate(yaml.safe_load(config.read_text())["kafka"])
        await ensure_topics(cfg, create=True)
        workers = [await Worker(config).start() for _ in range(n_workers)]
        try:
            await settled(workers, partitions)
            await until_sentinels(cfg, warm, "w")
            assert broker.proc is not None
            others0 = cpu_of(broker.proc.pid), time.process_time()
            cpu0 = sum(w.cpu() for w in workers)
            seen = [len(w.lines) for w in workers]
            t0 = time.monotonic()
            await until_sentinels(cfg, msgs, "s")
            dt = time.monotonic() - t0
            cpu = sum(w.cpu() for w in workers) - cpu0
            tansu, me = cpu_of(broker.proc.pid) - others0[0], time.process_time() - others0[1]
            events = [line for w, n in zip(workers, seen, strict=True) for _, line in w.lines[n:]]
        finally:
            await asyncio.gather(*(w.stop() for w in workers))
    for line in events:  # rebalances, rewinds, warnings during the measurement explain outliers
        print("   ", line)
    return {"seconds": dt, "rate": samples / dt, "cpu": cpu, "per_cpu": samples / cpu, "broker_cpu": tansu,
            "producer_cpu": me}  # fmt: skip


async def recovery(msgs: list[tuple[int, bytes]], partitions: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        config = write_plant(Path(tmp), broker, partitions)
        cfg = KafkaConfig.model_validate(yaml.safe_load(config.read_text())["kafka"])
        await ensure_topics(cfg, create=True)
        workers = [await Worker(config).start() for _ in range(2)]
        try:
            await settled(workers, partitions)
            flowing = asyncio.create_task(send(cfg, msgs, pace=0.1))
            await asyncio.sleep(8)  # past the first checkpoint (5 s): the survivor restores it
            victim, survivor = workers
            taken = set(victim.partitions())
            seen = len(survivor.lines)
            t_kill = time.monotonic()
            victim.proc.send_signal(signal.SIGKILL)
            rx = re.compile(r"partition (\d+): (restored|starts fresh)")
            async with asyncio.timeout(120):
                while True:
                    hits = [
                        t
                        for t, line in survivor.lines[seen:]
                        if (m := rx.search(line)) and int(m[1]) in taken
                    ]
                    if hits:
                        flowing.cancel()
                        return hits[0] - t_kill
                    await asyncio.sleep(0.02)
        finally:
            await asyncio.gather(*(w.stop() for w in workers))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60, help="seconds of data at 10 Hz")
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    tags, batches = rounds(args.tags, args.seconds)
    msgs = messages(tags, batches, args.partitions)
    samples = sum(len(b) for b in batches)
    mb = sum(len(v) for _, v in msgs) / 1e6
    load = os.getloadavg()[0]
    print(f"scale-out: {args.tags} tags at 10 Hz, {args.seconds:g} s of data = {samples} samples in "
          f"{len(msgs)} messages ({mb:.0f} MB, {mb * 1e6 / samples:.1f} B/sample), "
          f"{args.partitions} partitions, 3 glob rules, load average {load:.1f}")  # fmt: skip
    engine = engine_cpu_rate(args.tags, min(args.seconds, 20))
    print(f"engine alone, 100 ms batches:   {engine / 1e6:6.2f} M samples per CPU s")
    pipeline = pipeline_cpu_rate(args.tags, min(args.seconds, 10))
    print(f"single-process sink.put + step: {pipeline / 1e6:6.2f} M samples per CPU s (Sample objects in)")
    res = {}
    for n in (1, 2):
        r = res[n] = asyncio.run(throughput(n, tags, batches, args.partitions))
        print(f"{n} worker{'s' if n > 1 else ' '} end to end:        {r['rate'] / 1e6:6.2f} M samples/s "
              f"({r['seconds']:.1f} s); {r['per_cpu'] / 1e6:.2f} M samples per worker CPU s = "
              f"{r['per_cpu'] / engine:.2f}x the engine, {r['per_cpu'] / pipeline:.2f}x the pipeline; "
              f"CPU s: workers {r['cpu']:.1f}, broker "
              f"{r['broker_cpu']:.1f}, producer {r['producer_cpu']:.1f}")  # fmt: skip
    print(f"2 workers / 1 worker:           {res[2]['rate'] / res[1]['rate']:6.2f}x")
    print(
        f"recovery after SIGKILL:         {asyncio.run(recovery(msgs, args.partitions)):6.2f} s "
        f"(session timeout 3 s) until the survivor evaluates a partition it took over"
    )
    print(json.dumps({"engine": engine, "pipeline": pipeline, **{f"workers_{k}": v for k, v in res.items()}}),
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
