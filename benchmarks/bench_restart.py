"""Restart to first evaluation: ``plantpulse run`` killed under load, then started again.

    .venv/bin/python benchmarks/bench_restart.py [--tags 2000] [--rate 10000] [--run 15]

A publisher sends ``--rate`` samples/s over ``--tags`` MQTT tags (100 readings per message) to
our own Mosquitto; ``plantpulse run`` (SQLite store, 2 rules over every tag, snapshot every 10 s)
runs ``--run`` seconds and is SIGKILLed, leaving an engine snapshot and the spool records after
it; it is started again at once. Measured, same run: the first (cold) start, from the process
start to its first live evaluation; and the restart, the same, which also restores the snapshot
and re-evaluates the spool after it. Prints both, the restart's restore/replay part (from its
log) and how much it replayed.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from bench_mqtt import own_broker
from paho.mqtt.enums import CallbackAPIVersion

RULES = """\
rules:
  - {id: hot, tag: "line1/*/temp", above: 95, for: 2s, severity: high}
  - {id: band, tag: "line1/*/temp", outside: [0, 100], severity: low}
"""


def publish(port: int, topic: str, tags: int, rate: int, stop: threading.Event) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    per, k = 100, 0
    start = time.monotonic()
    while not stop.is_set():
        readings = [{"t": f"m{(k + j) % tags:05d}", "v": 50 + (k + j) % 40} for j in range(per)]
        client.publish(topic, json.dumps({"ts": time.time_ns() // 1000, "r": readings}), qos=1)
        k += per
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the publisher's pace
    client.disconnect()
    client.loop_stop()


def first_evaluation(config: Path, cwd: Path) -> tuple[subprocess.Popen[str], float, list[str]]:
    """Start ``plantpulse run``; seconds from the start to its first live evaluation, its log."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plantpulse", "run", "-c", str(config)],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    for line in proc.stderr:
        log.append(line.rstrip())
        if "first live evaluation" in line:
            return proc, time.perf_counter() - started, log
    raise RuntimeError("\n".join(log[-20:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--run", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = own_broker(work)
        if broker is None:
            print("needs the mosquitto binary", file=sys.stderr)
            return 1
        topic = f"bench/{uuid.uuid4().hex[:8]}"
        (work / "rules.yaml").write_text(RULES, encoding="utf-8")
        plant = {
            "sources": [
                {"kind": "mqtt", "name": "feed", "host": "127.0.0.1", "port": port, "client_id": topic,
                 "subscriptions": [{"topic": topic, "tag": "line1/{t}/temp", "array": "$.r", "value": "v",
                                    "timestamp": "$.ts", "timestamp_format": "us"}]}
            ],
            "rules": ["rules.yaml"],
            "store": {"url": f"sqlite:///{work / 'plant.db'}"},
        }  # fmt: skip
        config = work / "plant.yaml"
        config.write_text(yaml.safe_dump(plant), encoding="utf-8")
        stop = threading.Event()
        pub = threading.Thread(target=publish, args=(port, topic, args.tags, args.rate, stop), daemon=True)
        try:
            pub.start()
            proc, cold, _ = first_evaluation(config, work)
            time.sleep(args.run)  # load for a while: a snapshot at 10 s, then more spool after it
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc, warm, log = first_evaluation(config, work)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        finally:
            stop.set()
            pub.join(10)
            broker.terminate()
            broker.wait(10)
    restored = next((ln for ln in log if "engine state restored" in ln), "")
    m = re.search(r"(\d+) spool records \((\d+) samples\) re-evaluated in ([\d.]+) s", restored)
    print(f"{args.tags} tags x 2 rules, {args.rate:,} samples/s, killed after {args.run:g} s")
    print(f"cold start to first evaluation:    {cold:6.2f} s")
    print(f"restart to first evaluation:       {warm:6.2f} s", end="")
    if m:
        print(f"  (of which restore + re-evaluating {int(m.group(2)):,} samples: {float(m.group(3)):.2f} s)")
    else:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
