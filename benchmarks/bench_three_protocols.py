"""All three protocols at once at 10k tags: the collector process' CPU and RSS against a baseline.

    .venv/bin/python benchmarks/bench_three_protocols.py [--tags 10000] [--tick 1] [--seconds 20]

One scenario line of ``tags / 7`` welders, a third each on OPC UA, Modbus TCP (one server per
247 units) and MQTT JSON, is served by three simulator processes (one per protocol, all on the
same start instant) so they do not take this process' CPU. MQTT goes to Mosquitto on
127.0.0.1:1883 when it runs (``--broker`` to choose), else to an embedded broker inside the
MQTT simulator's process. This process runs ``run_pipeline`` (collectors, stream, rules engine,
SQLite store through the spool) and measures, after a warm-up:

* CPU: ``time.process_time()`` per second of wall time (1.0 = one core busy),
* RSS: ``VmRSS`` from /proc/self/status at the end, and the peak (``ru_maxrss``),
* samples/s delivered into the pipeline.

Baselines, same process, same run: the process idle (RSS before any work), and the pipeline
alone (engine and SQLite store with the same rules) fed by an in-process generator at the
samples/s the real run reached, over the same tags: the ratio is what collecting over three
protocols costs on top of evaluating and storing the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from plantpulse.config import PlantConfig, Source, SpoolConfig, StoreConfig
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample, TagRegistry
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.scenario import SIGNALS, Scenario
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline

RULES = """
rules:
  - {id: dev, tag: "line1/weld*/current", deviation: {setpoint: "{asset}/current_sp", limit: 5}, for: 3s,
     severity: high}
  - {id: volt, tag: "line1/weld*/voltage", outside: [20, 28], for: 2s, severity: medium}
  - {id: stale, tag: "line1/weld*/current", stale: 5s, severity: medium}
"""


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def scenario_doc(tags: int, tick: float) -> dict[str, Any]:
    welders = math.ceil(tags / len(SIGNALS))
    third = math.ceil(welders / 3)
    width = max(2, len(str(welders)))

    def name(i: int) -> str:
        return f"weld{i:0{width}d}"

    return {
        "name": "bench",
        "welders": welders,
        "tick": f"{tick}s",
        "duration": "1h",
        "loop": True,
        "protocols": {
            "opcua": [f"{name(1)}..{name(third)}"],
            "modbus": [f"{name(third + 1)}..{name(2 * third)}"],
            "mqtt": [f"{name(2 * third + 1)}..{name(welders)}"],
        },
    }


# -- the simulator processes -----------------------------------------------------------------------


async def child(protocol: str, scenario: Scenario, start_ns: int, broker: str | None) -> None:
    """Serve one protocol's welders; print the sources as one JSON line; run until stdin closes."""
    host, _, port = (broker or "").rpartition(":")
    run = uuid.uuid4().hex[:8]
    async with SimulatedLine(
        scenario,
        only={protocol},  # type: ignore[arg-type]
        start_ns=start_ns,
        mqtt_broker=(host, int(port)) if broker else None,
        mqtt_prefix=f"bench/{run}",
    ) as line:
        sources = line.sources(mqtt={"client_id": f"bench-{run}", "persistent": False})
        print(json.dumps([s.model_dump(mode="json") for s in sources]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@dataclass
class Measure:
    cpu: float  # process CPU seconds per wall second
    rss_kib: int
    samples_per_s: float


class Meter:
    """Counts samples into the pipeline and samples CPU and wall time at two instants."""

    def __init__(self) -> None:
        self.samples = 0
        self._t0 = (0.0, 0.0, 0)

    def mark(self) -> None:
        self._t0 = (time.perf_counter(), time.process_time(), self.samples)

    def read(self) -> Measure:
        wall0, cpu0, n0 = self._t0
        wall = time.perf_counter() - wall0
        return Measure((time.process_time() - cpu0) / wall, rss_kib(), (self.samples - n0) / wall)


async def measure_three(
    sources: list[Any], rules: list[Rule], db: Path, warmup: float, seconds: float
) -> Measure:
    from plantpulse.app import run_pipeline

    meter = Meter()
    plant = PlantConfig(
        sources=sources,
        store=StoreConfig(
            url=f"sqlite:///{db}", spool=SpoolConfig(dir=db.with_suffix(".spool"), fsync=False)
        ),
    )
    stop = asyncio.Event()
    result: list[Measure] = []

    def on_batch(batch: Any, events: Any) -> None:
        meter.samples += len(batch.ts)

    async def clock() -> None:
        await asyncio.sleep(warmup)
        meter.mark()
        await asyncio.sleep(seconds)
        result.append(meter.read())
        stop.set()

    timer = asyncio.create_task(clock())
    await run_pipeline(plant, rules, stop=stop, on_batch=on_batch)
    await timer
    return result[0]


async def measure_generator(
    names: list[str], *, rate: float, rules: list[Rule], db: Path, warmup: float, seconds: float
) -> Measure:
    """The pipeline alone: engine + SQLite spool/store, fed ``rate`` samples/s in 100 ms batches."""
    tags = TagRegistry(names)
    store = SQLiteStore(f"sqlite:///{db}")
    writer = SpoolWriter(store, SpoolConfig(dir=db.with_suffix(".spool"), fsync=False))
    await writer.start()
    pipeline = Pipeline(Engine(rules, tags), tags, writer, None)
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    meter = Meter()
    rng = np.random.default_rng(1)
    per_batch = max(1, round(rate / 10))
    base = {"current": 180.0, "current_sp": 180.0, "voltage": 24.0, "wire_speed": 8.0}
    start = time.perf_counter()
    k = 0
    marked = False
    while True:
        now = time.perf_counter() - start
        if not marked and now >= warmup:
            meter.mark()
            marked = True
        if now >= warmup + seconds:
            break
        ts = time.time_ns()
        picks = rng.integers(0, len(names), per_batch)
        batch = []
        for i, noise in zip(picks.tolist(), rng.uniform(-0.5, 0.5, per_batch).tolist(), strict=True):
            name = names[i]
            batch.append(Sample(ts, name, base.get(name.rpartition("/")[2], 1.0) + noise))
        await pipeline.sink.put(batch)
        meter.samples += len(batch)
        k += 1
        await asyncio.sleep(max(0.0, k * 0.1 - (time.perf_counter() - start)))
    measured = meter.read()
    stop.set()
    await running
    await writer.stop()
    return measured


async def parent(args: argparse.Namespace) -> None:
    idle = Measure(0.0, rss_kib(), 0.0)
    broker = args.broker or ("127.0.0.1:1883" if reachable("127.0.0.1", 1883) else None)
    doc = scenario_doc(args.tags, args.tick)
    scenario = Scenario.model_validate(doc)
    rules = load_rules_text(RULES, "bench.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(doc))
        start_ns = time.time_ns() + 2_000_000_000
        start_ns -= start_ns % 1_000_000
        procs = []
        for proto in ("opcua", "modbus", "mqtt"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                proto,
                "--scenario",
                str(path),
                "--start",
                str(start_ns),
            ]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *cmd,
                    *(["--broker", broker] if broker else []),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
            )
        try:
            adapter = TypeAdapter(list[Source])
            sources: list[Any] = []
            for p in procs:
                assert p.stdout is not None
                sources += adapter.validate_python(json.loads(await p.stdout.readline()))
            ntags = (
                sum(len(s.tags) for s in sources if s.kind != "mqtt") + len(scenario.welders_on("mqtt")) * 7
            )
            print(
                f"{ntags} tags: {len(scenario.welders_on('opcua'))} welders on OPC UA, "
                f"{len(scenario.welders_on('modbus'))} on Modbus, "
                f"{len(scenario.welders_on('mqtt'))} on MQTT JSON "
                f"({'broker ' + broker if broker else 'embedded broker'}); tick {args.tick:g}s; "
                f"warm-up {args.warmup:g}s, measured {args.seconds:g}s; {os.cpu_count()} CPUs",
                flush=True,
            )
            three = await measure_three(sources, rules, Path(tmp) / "three.db", args.warmup, args.seconds)
        finally:
            for p in procs:
                assert p.stdin is not None
                p.stdin.close()
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 20)
                except TimeoutError:
                    p.kill()
                    await p.wait()
        peak_three = peak_kib()
        gen = await measure_generator(
            scenario.tag_names(),
            rate=three.samples_per_s,
            rules=rules,
            db=Path(tmp) / "gen.db",
            warmup=args.warmup,
            seconds=args.seconds,
        )
    print(f"{'':34} {'CPU (core)':>10} {'RSS MiB':>8} {'samples/s':>10}")
    for label, m in (
        ("idle process", idle),
        ("pipeline fed by a generator", gen),
        ("three protocols (OPC UA+Modbus+MQTT)", three),
    ):
        print(f"{label:34} {m.cpu:10.3f} {m.rss_kib / 1024:8.1f} {m.samples_per_s:10.0f}")
    print(f"peak RSS {peak_three / 1024:.1f} MiB (ru_maxrss, after the three-protocol run)")
    print(
        f"ratios: CPU {three.cpu / gen.cpu:.2f}x the generator-fed pipeline; "
        f"RSS {three.rss_kib / idle.rss_kib:.2f}x idle; "
        f"CPU per 1k samples/s: {1000 * three.cpu / max(three.samples_per_s, 1):.3f} core "
        f"(generator-fed: {1000 * gen.cpu / max(gen.samples_per_s, 1):.3f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument(
        "--tick", type=float, default=1.0, help="scenario tick in seconds (Modbus polls once per tick)"
    )
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--broker", default=None, help="HOST:PORT (default: 127.0.0.1:1883 if up, else embedded)")
    ap.add_argument("--child", choices=["opcua", "modbus", "mqtt"], help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        scenario = Scenario.model_validate(json.loads(Path(args.scenario).read_text()))
        asyncio.run(child(args.child, scenario, args.start, args.broker))
    else:
        asyncio.run(parent(args))


if __name__ == "__main__":
    main()
