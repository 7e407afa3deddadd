"""Alerts routed and delivered per second, and latency from raise to receipt, for the escalation
notifier (its local SQLite outbox, apprise json:// to a local PushReceiver), against a baseline measured in
the same run: a bare sequential ``apprise.Apprise().async_notify`` loop to the same receiver.

    .venv/bin/python benchmarks/bench_notify.py [--alerts 1000] [--rate 50]

Two runs of the notifier: a burst (every alert submitted at once: throughput, and the latency a
storm sees) and a paced one at ``--rate`` alerts/s (latency in normal operation; goal p99 <=
100 ms). Each alert goes to one person over one channel, so one alert = one push.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import apprise

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent
from plantpulse.config import PlantConfig
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.people.roster import Roster
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.store.sqlite_outbox import SQLiteOutbox

TEAM = """\
site: {{timezone: Asia/Shanghai}}
team:
  language: en
  people:
    Ann: {{roles: [operator], contacts: {{webhook: "{url}"}}}}
  assignments:
    - {{asset: "*", roles: [operator], people: [Ann]}}
  policies:
    default: {{steps: [{{after: 0s, to: [operator]}}]}}
  flood: {{threshold: 1000000}}
"""
_ID = re.compile(r"Alert ([0-9a-f-]{36})")


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def baseline(rx: PushReceiver, n: int) -> tuple[float, list[float]]:
    ap = apprise.Apprise()
    ap.add(rx.url)
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        assert await ap.async_notify(body=f"baseline {i}", title="baseline")
        lat.append((time.perf_counter() - t) * 1000)
    return n / (time.perf_counter() - t0), lat


async def notifier_run(rx: PushReceiver, n: int, rate: float | None, db: Path) -> tuple[float, list[float]]:
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load("bench.yaml", text=TEAM.format(url=rx.url)))
    roster = Roster(plant.team, plant.site.timezone)
    url = f"sqlite:///{db}"
    store, outbox = SQLiteStore(url), SQLiteOutbox(db.with_suffix(".outbox.db"))
    await store.open()
    await outbox.open()
    notifier = EscalationNotifier(roster, outbox, store=store, journal=store, poll_interval=3600 * 10**9)
    await notifier.start()
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    base = len(rx.received)

    def on_push(item: Received) -> None:
        m = _ID.search(item.body.get("message", ""))
        if m:
            got[m.group(1)] = time.perf_counter()

    rx.on_push = on_push
    now = time.time_ns()
    events = [
        AlertEvent("raised", "bench", f"line1/m{i:05d}/temp", "high", now + i, now + i, 1.0, "bench")
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        shift = {ev.alert_id: roster.on_shift(ev.asset, ev.raised_at)}
        await store.write_alert_events([ev], uuid.uuid4().hex, shift)  # as the pipeline does first
        sent[ev.alert_id] = time.perf_counter()
        notifier.submit([ev], shift)
        if rate is not None:
            await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))  # pacing the load
    await rx.wait_for(base + n, 120)
    elapsed = time.perf_counter() - t0
    await notifier.stop()
    await outbox.close()
    await store.close()
    rx.on_push = None
    return n / elapsed, [(got[a] - sent[a]) * 1000 for a in sent]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0)
    args = ap.parse_args()
    async with PushReceiver() as rx:
        await baseline(rx, 20)  # warm-up: connection set-up, imports
        b_rate, b_lat = await baseline(rx, args.alerts)
        with tempfile.TemporaryDirectory() as d:
            burst_rate, burst_lat = await notifier_run(rx, args.alerts, None, Path(d) / "burst.db")
            paced_n = max(100, int(args.rate * 10))
            _, paced_lat = await notifier_run(rx, paced_n, args.rate, Path(d) / "paced.db")
    print(
        f"baseline: bare apprise json:// loop   {b_rate:8.0f} pushes/s   p50 {pct(b_lat, 50):6.1f} ms"
        f"  p99 {pct(b_lat, 99):6.1f} ms (per notify call)"
    )
    print(
        f"notifier burst ({args.alerts} alerts)     {burst_rate:8.0f} alerts/s"
        f"   p50 {pct(burst_lat, 50):6.1f} ms  p99 {pct(burst_lat, 99):6.1f} ms (raise -> receipt)"
    )
    print(
        f"notifier paced ({args.rate:g}/s, {paced_n} alerts)  "
        f"p50 {pct(paced_lat, 50):6.1f} ms  p99 {pct(paced_lat, 99):6.1f} ms  max {max(paced_lat):6.1f} ms"
    )
    print(
        f"ratio: throughput {burst_rate / b_rate:.2f}x the bare loop; paced p99 {pct(paced_lat, 99):.1f} ms"
        f" vs goal 100 ms: {'met' if pct(paced_lat, 99) <= 100 else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
