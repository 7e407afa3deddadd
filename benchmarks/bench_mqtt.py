"""MQTT JSON through the whole pipeline (collect + rules + store) against a bare paho loop, one run.

    .venv/bin/python benchmarks/bench_mqtt.py [--messages 40000] [--batch 20] [--profile CASE]

A Mosquitto the benchmark starts itself (free port, temp dir, unlimited queue and in-flight
window) holds QoS 1 messages for a persistent session while the subscriber is away; each
subscriber then drains the same kind of queue, timed from its connect to its last sample:

* baseline: a bare paho loop (``loop_forever``) whose ``on_message`` only ``json.loads`` the
  payload (also shown: the same loop only counting);
* plantpulse: ``run_pipeline`` with one MQTT source, a deviation rule ("> 5 for 3 s" per key),
  the durable spool and SQLite, timed until every sample is stored (``run_pipeline`` returns
  after the spool drained into the store).

Cases (the same rule on ``line1/*/current``):

* ``single``: one reading per message ``{"ts", "value"}``, 100 welders;
* ``batched``: ``--batch`` readings per message (``{"ts", "readings": [{"signal", "value"}]}``);
* ``three``: ``{"ts", "current", "voltage", "current_sp"}`` mapped to three tags by ``fields``,
  the rule's setpoint read from the same message (``{asset}/current_sp``).

Goals (issue 13), each a ratio within this run: single >= 1.0x the bare parsing loop (msg/s);
batched samples/s >= 10x the single message rate; three-field msg/s >= 0.9x the single rate.
``--profile single|batched|three`` runs that case once more under cProfile and prints where
the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import getpass
import json
import logging
import math
import pstats
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse.app import run_pipeline
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.config import PlantConfig, SpoolConfig, StoreConfig
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import SampleBatch
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore

HOST = "127.0.0.1"
T0_MS = (time.time_ns() // 10**9 - 3600) * 1000  # an hour ago: inside every source's accept window
WELDERS = 100
RULES = """
rules:
  - {id: dev, tag: "line1/*/current", deviation: {setpoint: SETPOINT, limit: 5}, for: 3s, severity: high}
"""


@dataclass(frozen=True)
class Case:
    name: str
    messages: int
    per_message: int  # samples per message
    subscription: dict[str, Any]
    setpoint: str

    def payloads(self) -> list[tuple[str, bytes]]:
        out = []
        for i in range(self.messages):
            welder = f"w{i % WELDERS:03d}"
            ts = T0_MS + 10 * (i // WELDERS)  # every welder reports every 10 ms
            v = 180.0 + 3 * math.sin(i / 50)  # inside the band: throughput, not alert rendering
            if self.name == "single":
                doc: dict[str, Any] = {"ts": ts, "value": round(v, 2)}
            elif self.name == "three":
                doc = {"ts": ts, "current": round(v, 2), "voltage": 24.1, "current_sp": 180}
            else:
                names = ["current"] + [f"s{j}" for j in range(1, self.per_message)]
                doc = {
                    "ts": ts,
                    "readings": [{"signal": n, "value": round(v + j, 2)} for j, n in enumerate(names)],
                }
            out.append((welder, json.dumps(doc).encode()))
        return out


def cases(messages: int, batch: int) -> list[Case]:
    single = {"tag": "line1/{-1}/current", "value": "$.value"}
    batched = {"tag": "line1/{-1}/{signal}", "array": "$.readings", "value": "value"}
    three = {
        "asset": "line1/{-1}",
        "fields": {
            "current": "{asset}/current",
            "voltage": "{asset}/voltage",
            "current_sp": "{asset}/current_sp",
        },
    }
    return [
        Case("single", messages, 1, single, "180"),
        Case("batched", max(1, messages // batch), batch, batched, "180"),
        Case("three", messages, 3, three, '"{asset}/current_sp"'),
    ]


# -- the broker and its queue ----------------------------------------------------------------------


def own_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\nuser {getpass.getuser()}\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nmax_queued_bytes 0\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("mosquitto did not start")


def register_session(port: int, client_id: str, topic_filter: str) -> None:
    """Create the persistent session and its subscription, then go away."""
    subscribed = False

    def on_subscribe(*_: Any) -> None:
        nonlocal subscribed
        subscribed = True

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_subscribe = on_subscribe
    c.connect(HOST, port)
    c.subscribe(topic_filter, qos=1)
    while not subscribed:
        c.loop(0.1)
    c.disconnect()


def queue_messages(port: int, prefix: str, messages: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(HOST, port)
    pub.loop_start()
    infos = [pub.publish(f"{prefix}/{welder}", payload, qos=1) for welder, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


# -- the subscribers ---------------------------------------------------------------------------------


def bare_drain(port: int, client_id: str, expect: int, *, parse: bool) -> float:
    """Seconds from connect to the last message of a bare paho loop (auto PUBACK)."""
    count = 0
    done = 0.0

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count, done
        if parse:
            json.loads(msg.payload)
        count += 1
        if count >= expect:
            done = time.perf_counter()
            client.disconnect()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = on_message
    start = time.perf_counter()
    c.connect(HOST, port)
    c.loop_forever()
    return done - start


async def pipeline_drain(
    port: int, client_id: str, prefix: str, case: Case, workdir: Path
) -> tuple[float, int]:
    """Seconds from the pipeline's start to every sample stored, and the alerts raised."""
    sub = {"topic": f"{prefix}/+", "timestamp": "$.ts", "timestamp_format": "ms", **case.subscription}
    source = MqttSource.model_validate(
        {
            "kind": "mqtt",
            "name": "bench",
            "host": HOST,
            "port": port,
            "client_id": client_id,
            "subscriptions": [sub],
        }
    )
    db = workdir / f"{client_id}.db"
    plant = PlantConfig(
        sources=[source],
        store=StoreConfig(url=f"sqlite:///{db}", spool=SpoolConfig(dir=db.with_suffix(".spool"))),
    )
    rules = load_rules_text(RULES.replace("SETPOINT", case.setpoint), "bench.yaml")
    expect = case.messages * case.per_message
    stop = asyncio.Event()
    started = asyncio.Event()
    seen = 0

    def on_batch(batch: SampleBatch, events: list[Any]) -> None:
        nonlocal seen
        seen += len(batch)
        if seen >= expect:
            stop.set()

    async def clock() -> float:
        await started.wait()
        return time.perf_counter()

    t0 = asyncio.create_task(clock())
    result = await run_pipeline(plant, rules, stop=stop, on_batch=on_batch, started=started)
    # a run shorter than the store's opening leaves its records spooled for the next start:
    # drain them here, on the clock, so the figure always includes storing every sample
    replay = SpoolWriter(SQLiteStore(plant.store.url), plant.store.spool_config)
    await replay.start()
    await replay.flush()
    await replay.stop()
    elapsed = time.perf_counter() - await t0
    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    if result.stats.samples < expect or stored < expect:
        raise RuntimeError(f"{case.name}: {result.stats.samples} processed, {stored} stored of {expect}")
    return elapsed, result.stats.raised


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class Figures:
    bare: float  # msg/s, counting only
    parse: float  # msg/s, json.loads
    pipeline: float  # msg/s through collect + rules + store
    per_message: int

    @property
    def samples(self) -> float:
        return self.pipeline * self.per_message


def measure(port: int, case: Case, workdir: Path, *, profile: bool = False) -> Figures:
    run = uuid.uuid4().hex[:8]
    prefix = f"bench/{run}/{case.name}"
    messages = case.payloads()
    rates = {}
    for kind in ("bare", "parse", "pipeline"):
        if profile and kind != "pipeline":
            continue
        cid = f"bench-{kind}-{run}-{case.name}"
        register_session(port, cid, f"{prefix}/+")
        queue_messages(port, prefix, messages)
        if kind == "pipeline":
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            elapsed, _ = asyncio.run(pipeline_drain(port, cid, prefix, case, workdir))
            if profiler is not None:
                profiler.disable()
                where_the_time_goes(profiler, elapsed, case)
        else:
            elapsed = bare_drain(port, cid, case.messages, parse=kind == "parse")
        rates[kind] = case.messages / elapsed
    return Figures(rates.get("bare", 0.0), rates.get("parse", 0.0), rates["pipeline"], case.per_message)


STAGES = {
    "read + decode into columns (MqttCollector._on_readable)": "mqtt.py:.*\\(_on_readable\\)",
    "  of which JSON -> columns (JsonDecoder.decode_into)": "mqtt_json.py:.*\\(decode_into\\)",
    "columns -> Sample rows at the sink boundary (to_samples)": "columns.py:.*\\(to_samples\\)",
    "runner counting sink (CollectorRunner._deliver)": "runner.py:.*\\(_deliver\\)",
    "pipeline step: rows -> batch, engine, spool (Pipeline.step)": "pipeline.py:.*\\(step\\)",
    "  of which Sample rows -> SampleBatch (from_samples)": "samples.py:.*\\(from_samples\\)",
    "  of which rules engine (Engine.process)": "engine.py:.*\\(process\\)",
    "  of which spool append (SpoolWriter.write_samples)": "spool.py:.*\\(write_samples\\)",
    "spool -> store, event-loop side (SpoolWriter._run)": "spool.py:.*\\(_run\\)",
}


def where_the_time_goes(profiler: cProfile.Profile, elapsed: float, case: Case) -> None:
    """Cumulative CPU time of the pipeline's stages on the event loop thread (cProfile does not
    see the worker threads: spool appends and store writes run there, on the other core)."""
    import re

    stats = pstats.Stats(profiler)
    table: Any = stats.stats  # type: ignore[attr-defined]
    samples = case.messages * case.per_message
    print(f"{case.name}: {samples} samples in {elapsed:.2f} s (profiled); cumulative time per sample:")
    for label, pattern in STAGES.items():
        rx = re.compile(pattern)
        cum = sum(v[3] for (file, line, fn), v in table.items() if rx.search(f"{file}:{line}({fn})"))
        print(f"  {label:62} {cum / samples * 1e6:6.2f} µs")
    stats.sort_stats("tottime").print_stats(15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--messages", type=int, default=40_000, help="messages of the single and three-field cases"
    )
    ap.add_argument("--batch", type=int, default=20, help="readings per message of the batched case")
    ap.add_argument("--profile", choices=["single", "batched", "three"], help="profile one case's pipeline")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = own_broker(Path(tmp))
        try:
            all_cases = cases(args.messages, args.batch)
            if args.profile:
                measure(port, next(c for c in all_cases if c.name == args.profile), Path(tmp), profile=True)
                return 0
            print(f"own mosquitto on 127.0.0.1:{port}; QoS 1 drain of a persistent session; SQLite, spool")
            figs = {c.name: measure(port, c, Path(tmp)) for c in all_cases}
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{'case':8} {'msgs':>7} {'bare count':>11} {'bare+json':>11} {'pipeline':>11} {'samples/s':>11}")
    for c in all_cases:
        f = figs[c.name]
        rates = f"{f.bare:9,.0f}/s {f.parse:9,.0f}/s {f.pipeline:9,.0f}/s {f.samples:11,.0f}"
        print(f"{c.name:8} {c.messages:7d} {rates}")
    single, batched, three = figs["single"], figs["batched"], figs["three"]
    print(
        "single-reading, collect+rules+store vs bare paho + json.loads: "
        f"{single.pipeline / single.parse:.2f}x "
        f"(goal >= 1.0; vs the counting loop {single.pipeline / single.bare:.2f}x)"
    )
    print(
        f"{args.batch} readings/message, samples/s vs the single-reading message rate: "
        f"{batched.samples / single.pipeline:.2f}x (goal >= 10)"
    )
    print(f"three fields -> three tags, msg/s vs the single-field message rate: "
          f"{three.pipeline / single.pipeline:.2f}x (goal >= 0.9)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
