"""Run ``plantpulse discover`` in-process (its asyncio.run in a worker thread, so the servers
of the test keep running on the test's loop), and read what it printed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plantpulse.cli import main


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """``plantpulse check -c path`` must pass; its stdout line."""
    capsys.readouterr()
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out
