"""``plantpulse demo`` as a user runs it: a real subprocess, stopped with SIGTERM / SIGINT.

A clean shutdown flushes what the pipeline holds: the summary's sample count is exactly what
the SQLite store holds afterwards (nothing lost, nothing doubled).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from demo_helpers import read_until, reap, stop

from plantpulse.httpserve import free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_demo_raises_pushes_and_flushes_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "demo.db"
    board_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "plantpulse",
        "demo",
        "--store",
        f"sqlite:///{db}",
        "--listen",
        f"127.0.0.1:{board_port}",
        "--lang",
        "zh",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        # the demo scenario raises weld-current-deviation at 11 s and pushes it to its receiver
        lines = await read_until(proc.stdout, r"推送给 张伟 \(wecom\):【高】报警:weld-current-deviation", 40)
        raised = "报警 高   weld-current-deviation line1/weld02/current: 焊接电流偏差 +"
        assert any(raised in ln for ln in lines)
        assert f"演示:实时看板 http://127.0.0.1:{board_port}/ ;按 Ctrl-C 停止" in lines
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{board_port}") as client:
            board = (await client.get("/board/all/state")).json()  # the alert stays active until 19 s
            page = await client.get("/")
        assert [a["tag"] for a in board["alerts"]["items"]] == ["line1/weld02/current"]
        assert {asset for asset, _, _ in board["tags"]} >= {"line1/weld01", "line1/weld02", "line1/weld03"}
        assert "demo welding shop" in page.text and 'data-base="board/all/"' in page.text
        rest = await stop(proc, sig, r"^汇总:")
    finally:
        await reap(proc)
    summary = re.search(r"汇总:样本 (\d+) 个,报警 (\d+) 条", rest[-1])
    assert summary is not None, rest
    with sqlite3.connect(db) as conn:
        stored = conn.execute("select count(*) from samples").fetchone()[0]
        alerts = conn.execute("select rule, tag from alerts").fetchall()
    assert stored == int(summary.group(1)) > 0
    assert ("weld-current-deviation", "line1/weld02/current") in alerts
