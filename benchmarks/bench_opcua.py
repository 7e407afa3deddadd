"""How many value changes per second one collector process takes from OPC UA simulators.

``--servers`` simulator processes (``plantpulse simulate``, each on its own port) serve
``--tags`` changing tags between them (current, voltage and wire speed of every welder change
every tick). One asyncua server process tops out near 15k written values/s, so offering 20k/s
takes several. In THIS process, in the same run and against the same simulators:

1. the baseline: one bare asyncua client + subscription per server whose handler only counts
   (what asyncua itself delivers into one process), then
2. one OpcUaCollector per server, all in this one process, into a sink that only counts
   (conversion to samples, handoff, heartbeats).

Also printed: publish responses per second and CPU seconds this process spent per second.

    .venv/bin/python benchmarks/bench_opcua.py --tags 600 --servers 1
    .venv/bin/python benchmarks/bench_opcua.py --tags 2000 --servers 4
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

from asyncua import ua
from asyncua.client import ua_session
from asyncua.client.client import Client

from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.errors import SourceError
from plantpulse.samples import Sample
from plantpulse.simulators.scenario import Scenario, opcua_source

SIGNALS = ("current", "voltage", "wire_speed")


class Counters:
    """Value changes delivered, heartbeats, and publish responses seen by asyncua."""

    def __init__(self) -> None:
        self.n = 0
        self.heartbeats = 0
        self.responses = 0


COUNT = Counters()
_publish = ua_session.UaSession.publish


async def _counted_publish(
    self: ua_session.UaSession, acks: list[ua.SubscriptionAcknowledgement]
) -> ua.PublishResponse:
    response = await _publish(self, acks)
    COUNT.responses += 1
    return response


ua_session.UaSession.publish = _counted_publish  # type: ignore[method-assign]


class CountingSink:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.ready = asyncio.Event()  # set once as many values arrived as there are tags

    async def put(self, samples: Sequence[Sample]) -> None:
        COUNT.n += len(samples)
        if COUNT.n >= self.expect:
            self.ready.set()

    def heartbeat(self, source: str, ts: int) -> None:
        COUNT.heartbeats += 1

    def error(self, source: str, error: SourceError) -> None:
        print("error:", error, file=sys.stderr)


class CountingHandler:
    def datachange_notification(self, node: object, val: object, data: object) -> None:
        COUNT.n += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Rate:
    def __init__(self, changes: float, responses: float, heartbeats: float, cpu: float) -> None:
        self.changes, self.responses, self.heartbeats, self.cpu = changes, responses, heartbeats, cpu


async def measure(seconds: float, warmup: float = 3.0) -> Rate:
    await asyncio.sleep(warmup)
    n0, r0, h0 = COUNT.n, COUNT.responses, COUNT.heartbeats
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    dt = time.perf_counter() - t0
    return Rate(
        (COUNT.n - n0) / dt,
        (COUNT.responses - r0) / dt,
        (COUNT.heartbeats - h0) / dt,
        (time.process_time() - c0) / dt,
    )


async def run_baseline(scenario: Scenario, endpoints: list[str], seconds: float) -> Rate:
    done = asyncio.Event()
    readies = [asyncio.Event() for _ in endpoints]

    async def one(endpoint: str, ready: asyncio.Event) -> None:
        src = opcua_source(scenario, endpoint, signals=SIGNALS)
        async with Client(endpoint, timeout=30, watchdog_intervall=30) as client:
            sub = await client.create_subscription(100, CountingHandler())
            nodes = [client.get_node(t.node) for t in src.tags]
            for i in range(0, len(nodes), 1000):
                await sub.subscribe_data_change(nodes[i : i + 1000], queuesize=10)
            ready.set()
            await done.wait()
            await sub.delete()

    tasks = [asyncio.create_task(one(e, r)) for e, r in zip(endpoints, readies, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    rate = await measure(seconds)
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


async def run_collectors(scenario: Scenario, endpoints: list[str], seconds: float) -> Rate:
    collectors = [
        OpcUaCollector(opcua_source(scenario, e, name=f"sim{i}", signals=SIGNALS, timeout="30s"))
        for i, e in enumerate(endpoints)
    ]
    sink = CountingSink(COUNT.n + sum(len(c.source.tags) for c in collectors))
    tasks = [asyncio.create_task(c.run(sink)) for c in collectors]
    await asyncio.wait_for(sink.ready.wait(), 120)
    rate = await measure(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


def start_simulators(
    tmp: Path, welders: int, tick: str, servers: int
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    path = tmp / "bench.yaml"
    path.write_text(f"name: bench\nwelders: {welders}\nseed: 1\ntick: {tick}\nduration: 1h\n")
    procs, ports = [], []
    for _ in range(servers):
        port = free_port()
        cmd = [sys.executable, "-m", "plantpulse", "simulate", "--scenario", str(path), "--port", str(port)]
        procs.append(
            subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        )
        ports.append(port)
    deadline = time.monotonic() + 120
    for port, proc in zip(ports, procs, strict=True):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("simulator did not start") from None
                time.sleep(0.2)
    return procs, [f"opc.tcp://127.0.0.1:{p}/plantpulse" for p in ports]


def stop_simulators(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=2000, help="changing tags in total")
    ap.add_argument("--servers", type=int, default=4, help="simulator processes sharing the tags")
    ap.add_argument("--tick", default="100ms")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    welders = -(-args.tags // (len(SIGNALS) * args.servers))
    scenario = Scenario.model_validate(
        {"name": "bench", "welders": welders, "seed": 1, "tick": args.tick, "duration": "1h"}
    )
    n_tags = welders * len(SIGNALS) * args.servers
    offered = n_tags * 1e9 / scenario.tick
    with tempfile.TemporaryDirectory() as tmp:
        procs, endpoints = start_simulators(Path(tmp), welders, args.tick, args.servers)
        try:
            base = asyncio.run(run_baseline(scenario, endpoints, args.seconds))
            coll = asyncio.run(run_collectors(scenario, endpoints, args.seconds))
        finally:
            stop_simulators(procs)
    print(
        f"{n_tags} tags on {args.servers} simulator process(es), tick {args.tick}: "
        f"offered {offered:,.0f} changes/s"
    )
    for name, r in (("baseline (bare asyncua handlers)", base), (f"{args.servers} OpcUaCollector(s)", coll)):
        print(
            f"{name:34s} {r.changes:9,.0f} changes/s  {r.responses:5.1f} publish responses/s  "
            f"{r.cpu:4.2f} CPU s/s" + (f"  {r.heartbeats:.1f} heartbeats/s" if r.heartbeats else "")
        )
    print(
        f"ratio collector/baseline {coll.changes / base.changes:.2f}, collector/offered "
        f"{coll.changes / offered:.2f}, baseline/offered {base.changes / offered:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
