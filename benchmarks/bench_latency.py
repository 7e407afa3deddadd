"""Alert latency through the real pipeline: from the moment a rule's ``for`` completes to the
alert being stored (SQLite) and pushed (received by the local PushReceiver).

An in-process OpcUaSimulator plays ``--welders`` welders with ``--faults`` short current steps
(+8 A for 1.5 s, staggered), a rule ``deviation > 5 A for 1s`` watches them, and
``plantpulse.app.run_pipeline`` runs collector -> stream -> engine -> SQLite + apprise push.
Source timestamps are the simulator's wall-clock tick instants, so for every alert

* pushed latency = wall time the receiver got the push - ``raised_at``
* stored latency = wall time a poller (every ``--poll`` ms, a second SQLite connection) first
  saw the alert row - ``raised_at`` (resolution: the poll period)

Baseline, measured in the same run against the same simulator: a bare asyncua subscription
(100 ms publishing interval) on every welder's current, whose delay is wall receipt - source
timestamp of each value: what OPC UA itself costs before plantpulse does anything.

    .venv/bin/python benchmarks/bench_latency.py [--welders 20] [--faults 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.client.client import Client

from plantpulse.alerts import AlertEvent
from plantpulse.app import run_pipeline
from plantpulse.config import NotificationsConfig, PlantConfig, SpoolConfig, StoreConfig
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.rules.loader import load_rule_files
from plantpulse.samples import SampleBatch
from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import Scenario, opcua_source
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.timefmt import from_datetime

RULES = """\
rules:
  - id: weld-current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 1s
    severity: high
"""
PUBLISHING_MS = 100


def scenario(welders: int, faults: int, spacing_ms: int) -> Scenario:
    width = max(2, len(str(welders)))
    steps = [
        {
            "welder": f"weld{i % welders + 1:0{width}d}",
            "kind": "step",
            "signal": "current",
            "start": f"{3000 + i * spacing_ms}ms",
            "duration": "1500ms",
            "magnitude": 8,
        }
        for i in range(faults)
    ]
    end_s = (3000 + faults * spacing_ms) // 1000 + 6
    return Scenario.model_validate(
        {
            "name": "latency",
            "asset": "line1",
            "welders": welders,
            "seed": 3,
            "tick": f"{PUBLISHING_MS}ms",
            "duration": f"{end_s}s",
            "faults": steps,
        }
    )


class BareDelay:
    """asyncua data-change handler: wall receipt - source timestamp of every value (ms)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def datachange_notification(self, node: object, val: object, data: Any) -> None:
        dv: ua.DataValue = data.monitored_item.Value
        if dv.SourceTimestamp is not None:
            self.delays.append((time.time_ns() - from_datetime(dv.SourceTimestamp)) / 1e6)


async def bare_subscription(endpoint: str, nodes: list[str], handler: BareDelay, stop: asyncio.Event) -> None:
    async with Client(endpoint, timeout=10) as client:
        sub = await client.create_subscription(PUBLISHING_MS, handler)
        await sub.subscribe_data_change([client.get_node(n) for n in nodes], queuesize=10)
        await stop.wait()
        await sub.delete()


async def poll_store(url: str, seen: dict[str, int], every: float, stop: asyncio.Event) -> None:
    store = SQLiteStore(url)
    while not stop.is_set():
        try:
            await store.open()
            break
        except Exception:  # the pipeline has not created the file yet
            await asyncio.sleep(every)
    try:
        while not stop.is_set():
            now = time.time_ns()
            for alert in await store.alerts():
                seen.setdefault(alert.id, now)
            await asyncio.sleep(every)
    finally:
        await store.close()


def alert_id_of(push: Received) -> str | None:
    text = str(push.body.get("message") or push.body.get("body") or "")
    for line in text.splitlines():
        if line.startswith("alert id: "):
            return line.removeprefix("alert id: ").strip()
    return None


async def run(welders: int, faults: int, spacing_ms: int, poll_ms: float, tmp: Path) -> int:
    scn = scenario(welders, faults, spacing_ms)
    rules_path = tmp / "rules.yaml"
    rules_path.write_text(RULES, encoding="utf-8")
    rules = load_rule_files([rules_path])
    db = tmp / "latency.db"
    url = f"sqlite:///{db}"
    raised: dict[str, int] = {}  # alert id -> raised_at (ns)
    pushed: dict[str, int] = {}  # alert id -> wall receipt (ns)
    stored: dict[str, int] = {}
    stop = asyncio.Event()
    done = asyncio.Event()

    def on_push(item: Received) -> None:
        aid = alert_id_of(item)
        if aid is not None and str(item.body.get("title", "")).startswith("[HIGH]"):
            pushed.setdefault(aid, time.time_ns())

    def on_alert(ev: AlertEvent) -> None:
        if ev.kind == "raised":
            raised[ev.alert_id] = ev.raised_at
            if len(raised) >= faults:
                done.set()

    bare = BareDelay()
    engine_in: list[float] = []  # per micro-batch: wall time it reached the engine - newest sample ts (ms)

    def on_batch(batch: SampleBatch, events: list[AlertEvent]) -> None:
        if len(batch.ts):
            engine_in.append((time.time_ns() - int(batch.ts.max())) / 1e6)

    async with PushReceiver(on_push=on_push) as rx, OpcUaSimulator(scn) as sim:
        plant = PlantConfig(
            sources=[opcua_source(scn, sim.endpoint)],
            store=StoreConfig(url=url, spool=SpoolConfig(dir=tmp / "spool")),
            notifications=NotificationsConfig(urls=[rx.url]),
        )
        current = [t.node for t in opcua_source(scn, sim.endpoint, signals=("current",)).tags]
        side = [
            asyncio.create_task(bare_subscription(sim.endpoint, current, bare, stop)),
            asyncio.create_task(poll_store(url, stored, poll_ms / 1e3, stop)),
        ]
        pipeline = asyncio.create_task(
            run_pipeline(
                plant,
                rules,
                stop=stop,
                duration=scn.duration / 1e9 + 20,
                on_alert=on_alert,
                on_batch=on_batch,
            )
        )
        try:
            await asyncio.wait_for(done.wait(), scn.duration / 1e9 + 10)
        except TimeoutError:
            print(f"only {len(raised)} of {faults} alerts raised", file=sys.stderr)
        await asyncio.sleep(1.0)  # the last pushes and store writes land
        stop.set()
        await asyncio.gather(pipeline, *side, return_exceptions=True)
        n_push = len(rx.received)

    def ms(arrived: dict[str, int]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([(arrived[a] - raised[a]) / 1e6 for a in raised if a in arrived], dtype=np.float64)

    push_ms, store_ms, bare_ms = ms(pushed), ms(stored), np.array(bare.delays[100:], dtype=np.float64)
    if not len(push_ms) or not len(store_ms) or not len(bare_ms):
        print(f"nothing to report: {len(push_ms)} pushed, {len(store_ms)} stored ({n_push} pushes)")
        return 1
    b50, b99 = np.percentile(bare_ms, [50, 99])
    print(
        f"{len(raised)} alerts raised, {len(push_ms)} pushed, {len(store_ms)} stored; "
        f"{welders} welders, publishing interval {PUBLISHING_MS} ms, store polled every {poll_ms:g} ms"
    )
    print(f"baseline bare subscription delay (receipt - source ts): p50 {b50:6.1f} ms  p99 {b99:6.1f} ms")
    e50, e99 = np.percentile(np.array(engine_in[50:], dtype=np.float64), [50, 99])
    print(f"pipeline micro-batch at the engine - newest sample ts:   p50 {e50:6.1f} ms  p99 {e99:6.1f} ms")
    for name, v in (("pushed", push_ms), ("stored", store_ms)):
        p50, p99 = np.percentile(v, [50, 99])
        print(
            f"{name} - raised_at: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {v.max():6.1f} ms | "
            f"p99 - publishing interval {p99 - PUBLISHING_MS:+6.1f} ms (goal <= +50) | "
            f"p50/bare p50 {p50 / b50:.2f}x, p99/bare p99 {p99 / b99:.2f}x"
        )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--welders", type=int, default=20)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--spacing", type=int, default=700, help="ms between fault starts")
    ap.add_argument("--poll", type=float, default=5.0, help="store poll period, ms")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(args.welders, args.faults, args.spacing, args.poll, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
