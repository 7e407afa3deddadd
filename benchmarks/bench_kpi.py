"""Live KPI upkeep against the rules engine on the same batches, in the same run.

    .venv/bin/python benchmarks/bench_kpi.py [--assets 1000] [--seconds 20] [--repeat 3]

A plant of ``--assets`` welders with 10 tags each (10k tags at the default), 10 Hz, 100 ms
batches of one sample per tag (the live shape): counters good / total / rework (one part per
45 s, 2 % scrap), a state tag (running, short stops now and then) and six noisy analog
signals. The engine runs the three rules of bench_engine.py over the six analog signals of
every welder (18 streams per welder). The KPI state keeps first-pass yield, rework rate,
availability, performance, OEE and the mean welding current per shift, hour and day, rolled
up to the line and the site (6 KPIs, 5 input tags per welder, one of them noisy; ``--no-mean``
leaves the mean current out: then every input is a counter or a state).

Both consume the same batches, alternately, timed separately; the first batch (stream
creation) is not timed. The data starts 10 s before a full hour, so one hour window closes
during the run: its cost is shown on its own and amortised over an hour of batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.kpi.loader import load_kpi_files
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.state import KpiState
from plantpulse.people.roster import Roster
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import SampleBatch, TagRegistry

NS = 1_000_000_000
ANALOG = ("current", "voltage", "wire_speed", "gas", "temp", "current_sp")
SIGNALS = ("good", "total", "rework", "state", *(f"pv/{a}" for a in ANALOG))

RULES = """
rules:
  - {id: hot, tag: "line*/w*/pv/*", above: 80, for: 3s, clear: {limit: 75, for: 1s}, severity: high}
  - {id: band, tag: "line*/w*/pv/*", outside: [10, 90], severity: medium}
  - {id: dev, tag: "line*/w*/pv/*", deviation: {setpoint: 50, limit: 35}, for: 2s, severity: low}
"""

PLANT = """
site: {timezone: Asia/Shanghai}
team:
  people: {A1: {roles: [operator]}, B1: {roles: [operator]}, C1: {roles: [operator]}}
  shifts:
    early: {start: "06:00", end: "14:00"}
    late: {start: "14:00", end: "22:00"}
    night: {start: "22:00", end: "06:00"}
  crews: {A: [A1], B: [B1], C: [C1]}
  rotations: {three: {start: 2026-01-05, pattern: {early: "ABC", late: "BCA", night: "CAB"}}}
  assignments: [{asset: "*", roles: [operator], rotation: three}]
"""

KPIS = """
breaks: [{start: "10:00", end: "10:20"}]
kpis:
  - {id: fpy, kind: yield, assets: "line*/w*", good: "{asset}/good", total: "{asset}/total", modulus: 65536,
     windows: [shift, hour, day], target: ">= 99.2%"}
  - {id: rework, kind: ratio, assets: "line*/w*", numerator: "{asset}/rework", denominator: "{asset}/total",
     modulus: 65536, windows: [shift, hour]}
  - {id: avail, kind: availability, assets: "line*/w*", state: "{asset}/state", running: [1],
     windows: [shift, hour]}
  - {id: perf, kind: performance, assets: "line*/w*", total: "{asset}/total", state: "{asset}/state",
     running: [1], ideal_cycle: 40s, modulus: 65536, windows: [shift, hour]}
  - {id: oee, kind: oee, availability: avail, performance: perf, quality: fpy, windows: [shift, hour]}
"""
MEAN_CURRENT = """\
  - {id: current, kind: time_weighted, assets: "line*/w*", tag: "{asset}/pv/current", stat: mean,
     windows: [shift, hour]}
"""


def names(n_assets: int) -> list[str]:
    return [f"line{a // 100}/w{a % 100:02d}/{s}" for a in range(n_assets) for s in SIGNALS]


def make_batches(tags: TagRegistry, n_assets: int, seconds: float, t0: int) -> list[SampleBatch]:
    rng = np.random.default_rng(1)
    ids = np.array([tags.id(n) for n in names(n_assets)], dtype=np.int32)
    n = len(ids)
    k = len(SIGNALS)
    total = rng.integers(0, 60000, n_assets).astype(np.float64)
    good, rework = total.copy(), np.zeros(n_assets)
    state = np.ones(n_assets)
    stop_until = np.full(n_assets, -1)
    level = rng.uniform(30, 60, (n_assets, len(ANALOG)))
    out = []
    for tick in range(int(seconds * 10)):
        part = (rng.random(n_assets) < 1 / 450) & (state == 1)
        total = (total + part) % 65536
        good = (good + (part & (rng.random(n_assets) > 0.02))) % 65536
        rework += part & (rng.random(n_assets) < 0.01)
        stop = rng.random(n_assets) < 1 / 3000
        stop_until[stop] = tick + rng.integers(300, 1200, int(stop.sum()))
        state = np.where(stop_until > tick, 0.0, 1.0)
        value = np.empty((n_assets, k))
        value[:, 0], value[:, 1], value[:, 2], value[:, 3] = good, total, rework, state
        value[:, 4:] = level + rng.normal(0, 1.0, level.shape)
        flat = value.reshape(n)
        flat[rng.random(n) < 0.0005] = np.nan  # a few bad samples
        ts = t0 + tick * NS // 10 + rng.integers(0, NS // 10, n)
        out.append(SampleBatch.make(tags, ts, ids.copy(), flat))  # fresh arrays, as a collector sends
    return out


def run(
    batches: list[SampleBatch], tags: TagRegistry, plan: KpiPlan, t0: int
) -> tuple[float, float, float, int]:
    """(engine s, kpi s without the closing batch, the closing batch's kpi s, results)."""
    eng = Engine(load_rules_text(RULES, "bench.yaml"), tags)
    state = KpiState(plan, tags, start=t0)
    eng.process(batches[0])
    state.process(batches[0])
    t_eng = t_kpi = t_close = 0.0
    results = 0
    for b in batches[1:]:
        a = time.perf_counter()
        eng.process(b)
        m = time.perf_counter()
        res = state.process(b, watermark=eng.watermark)  # as the pipeline will: the engine's
        z = time.perf_counter()
        t_eng += m - a
        if res:
            t_close += z - m
            results += len(res)
        else:
            t_kpi += z - m
    return t_eng, t_kpi, t_close, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mean", action="store_true", help="leave out the mean current (the one noisy input)")
    args = ap.parse_args()
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=PLANT))
    roster = Roster(plant.team, plant.site.timezone)
    kpi_file = Path(__file__).with_name("_bench_kpis.yaml")
    kpi_file.write_text(KPIS + ("" if args.no_mean else MEAN_CURRENT), encoding="utf-8")
    try:
        plan = KpiPlan(load_kpi_files([kpi_file], team=plant.team), roster)
    finally:
        kpi_file.unlink()
    t0 = int(datetime(2026, 3, 2, 8, 59, 50, tzinfo=UTC).timestamp()) * NS
    tags = TagRegistry()
    batches = make_batches(tags, args.assets, args.seconds, t0)
    n = len(batches) - 1
    best = min((run(batches, tags, plan, t0) for _ in range(args.repeat)), key=lambda r: r[1] / r[0])
    t_eng, t_kpi, t_close, results = best
    eng_us = t_eng / n * 1e6
    kpi_us = t_kpi / (n - 1) * 1e6
    hour_batches = 36_000
    amort = t_close / hour_batches * 1e6
    print(f"{args.assets} welders, {len(tags)} tags, 10 Hz, {n} timed batches of one sample per tag")
    print(f"rules engine (3 rules x 6 analog signals per welder): {eng_us:8.0f} us/batch")
    what = "5 KPIs, 4 counter/state inputs" if args.no_mean else "6 KPIs, 5 inputs (1 noisy)"
    print(f"KPI upkeep ({what} per welder): {kpi_us:6.0f} us/batch = {kpi_us / eng_us:6.1%} of the engine")
    total = (kpi_us + amort) / eng_us
    print(f"hour window close: {t_close * 1e3:.0f} ms for {results} results")
    print(f"  = {amort:.1f} us/batch over an hour of batches -> upkeep in all {total:.1%} of the engine")


if __name__ == "__main__":
    main()
