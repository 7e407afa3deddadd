"""How many value changes per second one collector process takes from the OPC UA simulator.

The simulator runs in its own process (``plantpulse simulate``) serving N welders whose
current, voltage and wire speed change every tick. In this process, first a bare asyncua
subscription whose handler only counts (the baseline: what asyncua itself can deliver), then
the OpcUaCollector into a sink that only counts (conversion to samples, handoff, heartbeats).

    .venv/bin/python benchmarks/bench_opcua.py [--tags 2000] [--tick 100ms] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from asyncua import Client

from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.errors import SourceError
from plantpulse.samples import Sample
from plantpulse.simulators.scenario import Scenario, opcua_source

SIGNALS = ("current", "voltage", "wire_speed")


class CountingSink:
    def __init__(self) -> None:
        self.n = 0
        self.heartbeats = 0

    async def put(self, samples: Sequence[Sample]) -> None:
        self.n += len(samples)

    def heartbeat(self, source: str, ts: int) -> None:
        self.heartbeats += 1

    def error(self, source: str, error: SourceError) -> None:
        print("error:", error, file=sys.stderr)


class CountingHandler:
    def __init__(self) -> None:
        self.n = 0

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.n += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(counter: object, attr: str, seconds: float, warmup: float = 2.0) -> float:
    await asyncio.sleep(warmup)
    n0, t0 = getattr(counter, attr), time.perf_counter()
    await asyncio.sleep(seconds)
    return (getattr(counter, attr) - n0) / (time.perf_counter() - t0)


async def baseline(scenario: Scenario, endpoint: str, seconds: float) -> float:
    src = opcua_source(scenario, endpoint, signals=SIGNALS)
    handler = CountingHandler()
    async with Client(endpoint, timeout=30, watchdog_intervall=30) as client:
        sub = await client.create_subscription(100, handler)
        nodes = [client.get_node(t.node) for t in src.tags]
        for i in range(0, len(nodes), 1000):
            await sub.subscribe_data_change(nodes[i : i + 1000], queuesize=10)
        rate = await measure(handler, "n", seconds)
        await sub.delete()
    return rate


async def collector(scenario: Scenario, endpoint: str, seconds: float) -> tuple[float, float]:
    src = opcua_source(scenario, endpoint, signals=SIGNALS, timeout="30s")
    sink = CountingSink()
    task = asyncio.create_task(OpcUaCollector(src).run(sink))
    rate = await measure(sink, "n", seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return rate, sink.heartbeats / (seconds + 2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--tick", default="100ms")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    welders = -(-args.tags // len(SIGNALS))
    text = f"name: bench\nwelders: {welders}\nseed: 1\ntick: {args.tick}\nduration: 1h\n"
    scenario = Scenario.model_validate(
        {"name": "bench", "welders": welders, "seed": 1, "tick": args.tick, "duration": "1h"}
    )
    offered = welders * len(SIGNALS) * 1e9 / scenario.tick
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plantpulse",
                "-q" if False else "-v",
                "simulate",
                "--scenario",
                str(path),
                "--port",
                str(port),
            ],
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or sim.poll() is not None:
                        raise SystemExit("simulator did not start") from None
                    time.sleep(0.2)
            endpoint = f"opc.tcp://127.0.0.1:{port}/plantpulse"
            base = asyncio.run(baseline(scenario, endpoint, args.seconds))
            rate, hb = asyncio.run(collector(scenario, endpoint, args.seconds))
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    print(f"tags {welders * len(SIGNALS)}, tick {args.tick}: offered {offered:,.0f} changes/s")
    print(f"baseline (bare asyncua handler, count only): {base:,.0f} changes/s")
    print(f"OpcUaCollector -> counting sink:              {rate:,.0f} changes/s ({hb:.1f} heartbeats/s)")
    print(f"ratio collector/baseline {rate / base:.2f}, collector/offered {rate / offered:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
