"""MQTT ingest through the whole pipeline, durable before acknowledged, against the code before it.

    .venv/bin/python benchmarks/bench_durable_ingest.py [--messages 40000] [--batch 20] [--base REV]

For each payload kind (one sample per message; ``--batch`` readings per message) the same
QoS 1 messages are queued at our own Mosquitto for a persistent session, then drained by
``run_pipeline`` (MQTT JSON collector, rules engine with one rule, SQLite store through the
fsync'd spool) in a fresh process: once with the code of ``--base`` (default: the merge base
with main, where the collector acknowledged once samples were in the in-memory queue) and
once with this tree (acknowledged once they are in the spool). Both runs are in this one
invocation, on the same broker and data. Prints samples/s from the first sample evaluated to
the last, and the ratio (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path

import paho.mqtt.client as mqtt
from bench_mqtt import own_broker, register_session
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]

DRIVER = r"""
import asyncio, json, sys, time
from plantpulse.app import run_pipeline
from plantpulse.config import PlantConfig
from plantpulse.rules.loader import load_rules_text

port, client_id, topic, batch, expect, workdir = sys.argv[1:7]
sub = {"topic": topic, "timestamp": "$.ts", "timestamp_format": "ms"}
if int(batch) <= 1:
    sub |= {"tag": "bench/{-1}", "value": "$.value"}
else:
    sub |= {"tag": "bench/{-1}/{signal}", "array": "$.readings", "value": "value"}
plant = PlantConfig.model_validate({
    "sources": [{"kind": "mqtt", "name": "bench", "host": "127.0.0.1", "port": int(port),
                 "client_id": client_id, "subscriptions": [sub]}],
    "store": {"url": f"sqlite:///{workdir}/bench.db"},
})
rules = load_rules_text("rules:\n  - {id: hot, tag: 'bench/**', above: 1000, for: 1s, severity: low}\n")

async def main():
    stop = asyncio.Event()
    seen = [0, 0.0, 0.0]
    def on_batch(b, events):
        if not seen[0]:
            seen[1] = time.perf_counter()
        seen[0] += len(b)
        if seen[0] >= int(expect):
            seen[2] = time.perf_counter()
            stop.set()
    await run_pipeline(plant, rules, stop=stop, on_batch=on_batch)
    print(json.dumps({"samples": seen[0], "seconds": seen[2] - seen[1]}))

asyncio.run(main())
"""


def payloads(n: int, batch: int) -> list[bytes]:
    """``n`` messages stamped a millisecond apart, ending now (inside every accept window)."""
    t0 = time.time_ns() // 1_000_000 - n
    if batch <= 1:
        return [json.dumps({"ts": t0 + i, "value": 180.0 + (i % 100) / 10}).encode() for i in range(n)]
    return [
        json.dumps(
            {"ts": t0 + i, "readings": [{"signal": f"s{j}", "value": 1.0 * j + i % 7} for j in range(batch)]}
        ).encode()
        for i in range(n)
    ]


def queue_messages(port: int, topic: str, messages: list[bytes]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(topic, m, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


def export(rev: str, into: Path) -> Path:
    """``plantpulse/`` of ``rev`` (a plain export, the repository is not touched)."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "plantpulse"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def drain(code: Path, port: int, n: int, batch: int, work: Path) -> float:
    """samples/s of ``run_pipeline`` from ``code`` draining ``n`` queued messages."""
    tag = uuid.uuid4().hex[:8]
    cid = f"bench-durable-{tag}"
    register_session(port, cid, f"bench/{tag}/+")
    queue_messages(port, f"bench/{tag}/t", payloads(n, batch))
    expect = n * max(batch, 1)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [str(port), cid, f"bench/{tag}/+", str(batch), str(expect), str(work)]
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip  (cwd: not this checkout, whose plantpulse/ would shadow the baseline's)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return float(got["samples"] / got["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument(
        "--base", default=None, help="git revision of the baseline (default: merge base with main)"
    )
    args = ap.parse_args()
    base = (
        args.base
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, port = own_broker(work)
        if proc is None:
            print("needs the mosquitto binary", file=sys.stderr)
            return 1
        try:
            old = export(base, work / "base")
            print(
                f"baseline {base[:12]} (ack after the in-memory queue)"
                " vs this tree (ack after the fsync'd spool)"
            )
            for label, n, batch in (
                ("single-value JSON", args.messages, 1),
                (f"batched JSON ({args.batch}/msg)", max(1, args.messages // args.batch), args.batch),
            ):
                before = drain(old, port, n, batch, work / f"{batch}-base")
                after = drain(ROOT, port, n, batch, work / f"{batch}-new")
                print(
                    f"{label:26s} before {before:>9,.0f} samples/s  after {after:>9,.0f} samples/s"
                    f"  ratio {after / before:.2f}"
                )
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
