"""``plantpulse run`` SIGKILLed five times under a numbered QoS 1 MQTT stream loses nothing,
duplicates nothing, and keeps every alert whole.

A publisher thread sends message ``n`` with ``seq = n`` and a temperature that makes four
excursions above the rule's limit, each longer than its ``for`` (some span a kill). The
real command runs against our own Mosquitto (persistent session, so the broker keeps what
was not acknowledged) and a SQLite store; it is killed with SIGKILL at set points of the
stream and started again at once, each time. At the end every sample is stored exactly once
(count and sum of ``seq``), and each excursion is exactly one alert, raised at its first
sample + ``for`` and cleared at the first sample back to normal (none duplicated, none left
active). Before the spool became the input log, samples acknowledged to the broker were lost
at a kill and an excursion spanning one was raised twice or never cleared.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from mqtt_helpers import Mosquitto, unique
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.slow

RATE = 800  # messages per second, two samples each
N = 12_000
EXCURSIONS = [(1_200, 2_600), (4_100, 5_500), (7_000, 8_400), (9_900, 11_300)]  # [first, back) in seq
KILLS = [2_200, 4_500, 6_300, 8_000, 10_400]  # seq published when the run is killed
S = 1_000_000_000

RULES = """\
rules:
  - {id: crash-hot, tag: line1/m1/temp, above: 50, for: 1s, severity: high}
"""


def hot(n: int) -> bool:
    return any(a <= n < b for a, b in EXCURSIONS)


class Publisher(threading.Thread):
    """Sends message n at start + n / RATE, stamped with its send time (µs, strictly rising)."""

    def __init__(self, port: int, topic: str) -> None:
        super().__init__(daemon=True)
        self.port, self.topic = port, topic
        self.ts: list[int] = []
        self.reached = {k: threading.Event() for k in KILLS}
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("crash-pub"))
            client.max_inflight_messages_set(0)  # no window: pacing is ours
            client.connect("127.0.0.1", self.port)
            client.loop_start()
            start = time.monotonic()
            last = 0
            infos = []
            for n in range(N):
                delay = start + n / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the publisher's pace, not a synchronisation
                last = max(last + 1, time.time_ns() // 1000)
                self.ts.append(last)
                body = {
                    "ts": last,
                    "readings": [{"s": "seq", "v": n}, {"s": "temp", "v": 100 if hot(n) else 20}],
                }
                infos.append(client.publish(self.topic, json.dumps(body), qos=1))
                if n in self.reached:
                    self.reached[n].set()
            for info in infos:
                info.wait_for_publish(30)
            client.disconnect()
            client.loop_stop()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.done.set()


def make_session(port: int, client_id: str, topic_filter: str) -> None:
    """The persistent session ``plantpulse run`` resumes, subscribed before anything is published
    (the broker keeps every message for it from then on, whether the run is up or killed)."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    try:
        assert subscribed.wait(10), "no SUBACK"
    finally:
        client.disconnect()
        client.loop_stop()


class Run:
    """One ``plantpulse run`` process; ``ready`` once it logged that it runs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready = asyncio.Event()
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode("utf-8", "replace").rstrip())
            if " running: " in self.log[-1]:
                self.ready.set()

    async def end(self) -> int:
        code = await self.proc.wait()
        await self._reader
        return code


async def start(config: Path, cwd: Path) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", "run", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=cwd,
    )  # fmt: skip
    return Run(proc)


def stored(db: Path) -> dict[str, tuple[int, float]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT t.name, count(*), sum(s.value) FROM samples s JOIN tags t ON t.id = s.tag_id"
            " GROUP BY t.name"
        ).fetchall()
    return {name: (int(n), float(total)) for name, n, total in rows}


async def test_sigkill_under_a_qos1_stream_loses_and_duplicates_nothing(tmp_path: Path, port: int) -> None:
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(tmp_path / "broker", port)
    await broker.start()
    prefix = unique("crash")
    session = unique("crash-run")
    await asyncio.to_thread(make_session, port, session, f"{prefix}/+")
    db = tmp_path / "plant.db"
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    plant = {
        "sources": [
            {
                "kind": "mqtt", "name": "feed", "host": "127.0.0.1", "port": port,
                "client_id": session, "heartbeat": "200ms", "lag": "500ms",
                "subscriptions": [
                    {"topic": f"{prefix}/+", "tag": "line1/m1/{s}", "array": "$.readings", "value": "v",
                     "timestamp": "$.ts", "timestamp_format": "us"}
                ],
            }
        ],
        "rules": ["rules.yaml"],
        "store": {"url": f"sqlite:///{db}"},
        "stream": {"snapshot_interval": "1s"},
    }  # fmt: skip
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(plant), encoding="utf-8")
    publisher = Publisher(port, f"{prefix}/m1")
    run = await start(config, tmp_path)
    runs = [run]
    try:
        publisher.start()
        for k in KILLS:
            assert await asyncio.to_thread(publisher.reached[k].wait, 30), "publisher stalled"
            await asyncio.wait_for(run.ready.wait(), 30)
            run.proc.kill()
            assert await run.end() == -signal.SIGKILL
            run = await start(config, tmp_path)  # at once, as a supervisor would
            runs.append(run)
        assert await asyncio.to_thread(publisher.done.wait, 60) and publisher.error is None
        want = {"line1/m1/seq": (N, N * (N - 1) / 2), "line1/m1/temp": (N, 0.0)}
        try:
            async with asyncio.timeout(40):
                # another process' database: there is no event to await, so it is polled
                while stored(db).get("line1/m1/seq", (0, 0))[0] < N:  # noqa: ASYNC110
                    await asyncio.sleep(0.25)
        except TimeoutError:
            raise AssertionError(
                f"stored {stored(db)} of {N}; last run:\n" + "\n".join(run.log[-30:])
            ) from None
        run.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(run.end(), 30) == 0, "\n".join(run.log[-20:])
    finally:
        for r in runs:
            if r.proc.returncode is None:
                r.proc.kill()
                await r.end()
        await broker.stop()
    got = stored(db)
    assert got["line1/m1/seq"] == want["line1/m1/seq"]
    assert got["line1/m1/temp"][0] == N
    assert not any("Traceback" in line for r in runs for line in r.log), "\n".join(runs[-1].log)
    us = publisher.ts
    expected = [((us[a] * 1000 + S), us[b] * 1000) for a, b in EXCURSIONS]
    with sqlite3.connect(db) as conn:
        alerts = conn.execute("SELECT id, raised_at, cleared_at FROM alerts ORDER BY raised_at").fetchall()
        journal = conn.execute(
            "SELECT alert_id, action, count(*) FROM alert_journal GROUP BY 1, 2"
        ).fetchall()
    assert [(r, c) for _, r, c in alerts] == expected
    assert sorted(journal) == sorted(
        (aid, action, 1) for aid, _, _ in alerts for action in ("raised", "cleared")
    )
    assert os.stat(db).st_mode & 0o077 == 0
