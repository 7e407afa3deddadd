"""MQTT collector throughput against a bare paho subscriber loop, same broker, same run.

    .venv/bin/python benchmarks/bench_mqtt.py [--messages 50000] [--batch 20] [--port 1883]

For each payload kind (one sample per message; ``--batch`` readings per message) the same
QoS 1 messages are queued at the broker for a persistent session while the subscriber is
away, then drained: first by a bare paho loop (``loop_forever``, ``on_message`` only counts),
then by the same loop also calling ``json.loads`` (the least any consumer does to get a
value), then by ``MqttCollector`` (asyncio socket integration, JSON decoding into samples, a counting
sink, PUBACK after ``sink.put``). Draining a queue measures the subscriber alone: no publisher
competes for the two cores while the clock runs. Prints samples/s and both ratios (goal >= 0.8).

It starts its own Mosquitto (unlimited queue and in-flight window, in a temp dir) when the
``mosquitto`` binary exists; otherwise it uses ``--port`` on 127.0.0.1, whose default
``max_queued_messages`` (1000) would drop most of the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.errors import SourceError
from plantpulse.samples import Sample

HOST = "127.0.0.1"


class CountingSink:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.count = 0
        self.first = 0.0
        self.done = asyncio.Event()

    async def put(self, samples: Sequence[Sample]) -> None:
        if not self.count:
            self.first = time.perf_counter()
        self.count += len(samples)
        if self.count >= self.expect:
            self.done.set()

    def heartbeat(self, source: str, ts: int) -> None:
        pass

    def error(self, source: str, error: SourceError) -> None:
        print("error:", error, file=sys.stderr)


def payloads(n: int, batch: int) -> list[bytes]:
    t0 = 1_767_254_400_000
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
    pub.connect(HOST, port)
    pub.loop_start()
    infos = [pub.publish(topic, m, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def register_session(port: int, client_id: str, topic_filter: str) -> None:
    """Create the persistent session and its subscription, then go away."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.connect(HOST, port)
    c.loop_start()
    c.subscribe(topic_filter, qos=1)[1]
    time.sleep(0.3)  # benchmark setup only: let the SUBACK through
    c.disconnect()
    c.loop_stop()


def bare_drain(port: int, client_id: str, expect: int, *, parse: bool) -> float:
    count = 0
    first = 0.0
    last = 0.0

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count, first, last
        if not count:
            first = time.perf_counter()
        if parse:
            json.loads(msg.payload)
        count += 1
        if count >= expect:
            last = time.perf_counter()
            client.disconnect()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = on_message
    c.connect(HOST, port)
    c.loop_forever()
    return last - first


async def collector_drain(port: int, client_id: str, topic_filter: str, batch: int, expect: int) -> float:
    sub: dict[str, object] = {"topic": topic_filter, "timestamp": "$.ts", "timestamp_format": "ms"}
    if batch <= 1:
        sub |= {"tag": "bench/{-1}", "value": "$.value"}
    else:
        sub |= {"tag": "bench/{-1}/{signal}", "array": "$.readings", "value": "value"}
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
    sink = CountingSink(expect)
    collector = MqttCollector(source)
    task = asyncio.create_task(collector.run(sink))
    await asyncio.wait_for(sink.done.wait(), 300)
    elapsed = time.perf_counter() - sink.first
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return elapsed


def one(port: int, n: int, batch: int) -> tuple[float, float, float]:
    tag = uuid.uuid4().hex[:8]
    topic = f"bench/{tag}/t"
    messages = payloads(n, batch)
    per = max(batch, 1)
    rates = []
    for kind in ("bare", "bare+json", "collector"):
        cid = f"bench-{kind}-{tag}"
        register_session(port, cid, f"bench/{tag}/+")
        queue_messages(port, topic, messages)
        if kind.startswith("bare"):
            elapsed = bare_drain(port, cid, n, parse=kind == "bare+json")
        else:
            elapsed = asyncio.run(collector_drain(port, cid, f"bench/{tag}/+", batch, n * per))
        rates.append(n * per / elapsed)
    return rates[0], rates[1], rates[2]


def own_broker(workdir: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        return None, 0
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--port", type=int, default=1883)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = own_broker(Path(tmp))
        port = port or args.port
        try:
            print(f"broker 127.0.0.1:{port} ({'own mosquitto' if proc else 'existing'}), QoS 1 drain")
            for label, n, batch in (
                ("single-value JSON", args.messages, 1),
                (f"batched JSON ({args.batch}/msg)", max(1, args.messages // args.batch), args.batch),
            ):
                bare, parsed, ours = one(port, n, batch)
                print(
                    f"{label:26s} bare paho {bare:>9,.0f}/s  bare+json.loads {parsed:>9,.0f}/s  "
                    f"collector {ours:>9,.0f}/s  ratio {ours / bare:.2f} / {ours / parsed:.2f}"
                )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
