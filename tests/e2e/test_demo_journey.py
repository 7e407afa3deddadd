"""A new user's first minutes with ``plantpulse demo`` (issue 12, Tests): what it prints works
as printed. The banner's ``curl`` line answers with the alerts, the ``plantpulse ack`` line
printed at the first alert acknowledges it in the demo's own store (the running notifier
stops escalating), every push shows its acknowledge link, which opens; everything is in one
language; and a second run starts afresh instead of carrying the first one's alerts along.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from demo_helpers import read_until, reap, stop

from plantpulse.httpserve import free_port

pytestmark = pytest.mark.slow


async def _demo(tmp_path: Path, port: int, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", "demo", "--listen", f"127.0.0.1:{port}", "--lang", "en", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip


async def _printed(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a line the demo printed, as a user pastes it (no shell needed: it is shlex-quoted)."""
    return await asyncio.to_thread(
        subprocess.run, shlex.split(command), cwd=cwd, capture_output=True, text=True, timeout=30,
        check=False, env={**os.environ, "LANG": "C.UTF-8"},
    )  # fmt: skip


async def _listed(curl: str, cwd: Path) -> list[dict[str, object]]:
    """The alerts the printed curl line lists, once the demo's store has the first one: it is
    written through the spool a moment after the raise is printed, and nothing outside the
    process says when, so the line is run again (as a user would) for up to 10 s."""
    async with asyncio.timeout(10):
        while True:
            listed = await _printed(curl, cwd)
            assert listed.returncode == 0, listed.stderr
            alerts: list[dict[str, object]] = json.loads(listed.stdout)["alerts"]
            if alerts:
                return alerts
            await asyncio.sleep(0.2)


def _after(prefix: str, lines: list[str]) -> str:
    found = [ln.removeprefix(prefix) for ln in lines if ln.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


async def test_the_printed_curl_and_ack_lines_work_and_a_second_run_starts_afresh(tmp_path: Path) -> None:
    port = free_port()
    proc = await _demo(tmp_path, port)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        lines = await read_until(proc.stdout, r"^demo: acknowledge it here: ", 40)
        # the board, the token and a curl line that answers as printed
        assert f"demo: live board on http://127.0.0.1:{port}/ ; Ctrl-C to stop" in lines
        token = _after("demo: API token: ", lines)
        curl = _after("demo: the API: ", lines)
        assert token in curl
        first = "RAISED  high     weld-current-deviation line1/weld02/current: "
        raised = [ln for ln in lines if first in ln]
        assert len(raised) == 1
        assert re.search(r": welding current \+\d\.\d A off its setpoint for 3s$", raised[0])
        alerts = await _listed(curl, tmp_path)
        assert [(a["rule"], a["tag"], a["acked_by"]) for a in alerts] == [
            ("weld-current-deviation", "line1/weld02/current", None)
        ]

        # the ack line, pointing at the demo's store, works while the demo runs
        ack = _after("demo: acknowledge it here: ", lines)
        assert f"--store sqlite:///{tmp_path / 'plantpulse-demo.db'}" in ack
        acked = await _printed(ack, tmp_path)
        assert acked.returncode == 0, acked.stderr
        alert_id = alerts[0]["id"]
        assert re.fullmatch(
            rf"{alert_id}: acknowledged by 张伟 at \S+Z \(weld-current-deviation line1/weld02/current\)\n",
            acked.stdout,
        ), acked.stdout
        again = json.loads((await _printed(curl, tmp_path)).stdout)["alerts"]
        assert [a["acked_by"] for a in again] == ["张伟"]

        # each push names its receiver and shows its link; the link opens the alert's page
        pushes = await read_until(proc.stdout, r"^\s+acknowledge: http://", 20)
        assert pushes[-2].strip().startswith("push to ")
        assert "[HIGH] ALERT: weld-current-deviation @ line1/weld02" in pushes[-2]
        link = pushes[-1].strip().removeprefix("acknowledge: ")
        async with httpx.AsyncClient() as client:
            page = await client.get(link)
        assert page.status_code == 200 and "weld-current-deviation" in page.text

        rest = await stop(proc, signal.SIGTERM, r"^summary: ")
    finally:
        await reap(proc)
    # one language: nothing Chinese but the people's names; no library chatter on stderr
    printed = re.sub(r"(push to |--by )'?[^\s']+", "", "\n".join(lines + pushes + rest))
    assert not re.search(r"[\u4e00-\u9fff]", printed), printed
    errors = (await proc.stderr.read()).decode()
    assert "asyncua" not in errors and "amqtt" not in errors and "Traceback" not in errors, errors
    with sqlite3.connect(tmp_path / "plantpulse-demo.db") as conn:
        assert conn.execute("select count(*) from alerts").fetchone()[0] == 1

    # a second run starts afresh: the first one's alert is neither in its store nor escalated
    second = await _demo(tmp_path, port, "--duration", "1")
    out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()
    text = out.decode()
    assert (
        "store sqlite:///plantpulse-demo.db (a fresh one: the previous run's store and state were removed; "
        "--resume keeps them)" in text
    )
    assert "push to" not in text
    with sqlite3.connect(tmp_path / "plantpulse-demo.db") as conn:
        assert conn.execute("select count(*) from alerts").fetchone()[0] == 0
