"""The board screenshots of docs/dashboards.md and README.md, made with Debian's chromium.

A board with two welding lines (ten minutes of history), three alarms in three ISA-18.2 states,
current-shift KPI tiles and the people on shift is served on loopback and photographed at
1920x1080, written at 1280x720 (small PNGs):

    .venv/bin/python scripts/board_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

import numpy as np
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboards"))

from board_live import chromium  # noqa: E402

from plantpulse.alerts import Alert, AlertEvent  # noqa: E402
from plantpulse.dashboards.board import BoardServer  # noqa: E402
from plantpulse.dashboards.pins import hash_pin  # noqa: E402
from plantpulse.dashboards.screens import BoardsConfig  # noqa: E402
from plantpulse.dashboards.state import BoardState  # noqa: E402
from plantpulse.httpserve import serving  # noqa: E402
from plantpulse.kpi.calendar import Window  # noqa: E402
from plantpulse.kpi.results import KpiResult  # noqa: E402
from plantpulse.samples import SampleBatch, TagRegistry  # noqa: E402

S = 10**9
SIGNALS = {"current": ("A", 180.0, 0.8), "voltage": ("V", 24.0, 0.15), "wire_speed": ("m/min", 8.0, 0.03)}
ON_SHIFT = {"operator": ["张伟"], "team_lead": ["李娜"]}


def board(now: int) -> BoardState:
    names = [f"line1/weld0{i}/{s}" for i in range(1, 5) for s in SIGNALS]
    names += [f"line2/press0{i}/{s}" for i in (1, 2) for s in ("force", "stroke_rate")]
    tags = TagRegistry(names)
    units = {n: SIGNALS[n.rpartition("/")[2]][0] for n in names if n.rpartition("/")[2] in SIGNALS}
    units.update({n: "kN" for n in names if n.endswith("force")})
    units.update({n: "/min" for n in names if n.endswith("stroke_rate")})
    boards = BoardsConfig.model_validate(
        {"screens": [
            {"name": "line1", "title": "一号焊装线", "language": "zh", "assets": ["line1"],
             "acknowledge": True},
            {"name": "plant", "title": "Body shop", "language": "en"},
        ]}
    )  # fmt: skip
    pins = {p: hash_pin("1234", iterations=10_000) for p in ("张伟", "李娜", "王强")}
    st = BoardState(tags, "焊装车间", boards=boards, units=units, pins=pins, language="zh",
                    on_shift=lambda asset, at: ON_SHIFT)  # fmt: skip
    rng = np.random.default_rng(2024)
    for k in range(600, -1, -2):  # ten minutes, every 2 s
        at = now - k * S
        values = []
        for n in names:
            sig = n.rpartition("/")[2]
            base, noise = (
                SIGNALS[sig][1:] if sig in SIGNALS else ((412.0, 3.0) if sig == "force" else (12.0, 0.2))
            )
            v = base + noise * rng.normal() + (0.5 * base / 100) * math.sin(k / 40)
            if n == "line1/weld02/current" and k < 80:
                v += 9.2  # the fault the alarm is about
            values.append(v)
        st.observe(SampleBatch.make(tags, [at] * len(names), list(range(len(names))), values), [])
    dev = AlertEvent("raised", "weld-current-deviation", "line1/weld02/current", "high", now - 150 * S,
                     now - 150 * S, 189.4, "焊接电流偏离设定值 +9.4 A 持续 3 秒")  # fmt: skip
    volt = AlertEvent("raised", "weld-voltage-band", "line1/weld03/voltage", "medium", now - 900 * S,
                      now - 900 * S, 18.1, "焊接电压 18.1 V 低于 20 V")  # fmt: skip
    press = AlertEvent("raised", "press-force-high", "line2/press01/force", "critical", now - 40 * S,
                       now - 40 * S, 455.0, "Press force 455 kN above 450 kN")  # fmt: skip
    st.observe(SampleBatch.empty(tags), [dev, volt, press])
    acked = Alert.from_event(volt, ON_SHIFT)
    acked.acked_at, acked.acked_by = now - 800 * S, "张伟"
    st.observe_alert(acked, now)

    def kpi(kpi: str, asset: str, value: float, target: str, met: bool) -> KpiResult:
        w = Window(now - 4 * 3600 * S, now + 8 * 3600 * S, "shift", "day", "2026-12-01", "2026-12-01 day")
        status = "ok" if met else "missed"
        return KpiResult(w, asset, kpi, value, None, None, 0.98, "A", target, met, False, status)

    st.kpi_defs = {}
    st.observe_kpis([
        kpi("first_pass_yield", "line1", 0.987, ">= 98%", True),
        kpi("availability", "line1", 0.861, ">= 90%", False),
        kpi("rework_rate", "line1", 0.009, "<= 1.5%", True),
        kpi("first_pass_yield", "line2", 0.994, ">= 98%", True),
    ])  # fmt: skip
    return st


async def main(out: Path) -> None:
    now = time.time_ns()
    server = BoardServer(board(now))
    async with serving(Starlette(routes=server.routes)) as port, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1920, "height": 1080}, device_scale_factor=2 / 3)
        url = f"http://127.0.0.1:{port}"
        for path, name in ((f"{url}/board/line1", "board"), (f"{url}/board/plant", "board-en")):
            await page.goto(path)
            await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
            await page.add_style_tag(content=".al.unack .bar, .al.unack .sev { animation: none; }")  # a still
            await page.wait_for_timeout(300)
            await page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        await page.goto(f"{url}/board/line1")
        await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
        await page.locator("#alarm-list li.unack").first.get_by_role("button", name="确认").click()
        await page.fill("#act-pin", "1234")
        await page.fill("#act-comment", "更换导电嘴后电流恢复")
        await page.screenshot(path=str(out / "board-acknowledge.png"))
        print(out / "board-acknowledge.png")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    out = p.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(out))
