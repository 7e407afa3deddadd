"""Shared by the Modbus tests (imported by name): golden case loading and a socat serial pair."""

from __future__ import annotations

import asyncio
import csv
import math
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from plantpulse.simulators.modbus import Layout

CASES = Path(__file__).parent / "cases"


def load_registers(path: Path) -> Layout:
    """``registers.yaml``: unit -> table -> first address -> value or list of values."""
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    layout: dict[int, dict[Any, dict[int, int]]] = {}
    for unit, tables in data.items():
        for table, blocks in tables.items():
            cells = layout.setdefault(int(unit), {}).setdefault(table, {})
            for first, values in blocks.items():
                for i, v in enumerate(values if isinstance(values, list) else [values]):
                    cells[int(first) + i] = int(v)
    return layout


def load_expected(path: Path) -> dict[str, tuple[float, str]]:
    """``expected.csv``: tag,value[,quality]; quality defaults to good."""
    with path.open(encoding="utf-8", newline="") as f:
        return {row["tag"]: (float(row["value"]), row.get("quality") or "good") for row in csv.DictReader(f)}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@asynccontextmanager
async def serial_pair(tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat (a virtual null-modem cable), ready when yielded."""
    if shutil.which("socat") is None:
        reason = "socat is not installed (apt-get install socat): RTU needs a virtual serial pair"
        if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} and PLANTPULSE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(reason)
    a, b = tmp / "ttyA", tmp / "ttyB"
    proc = await asyncio.create_subprocess_exec(
        "socat",
        "-d",
        "-d",
        f"pty,raw,echo=0,link={a}",
        f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(10):
            while b"starting data transfer loop" not in await proc.stderr.readline():
                pass
        yield str(a), str(b)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
