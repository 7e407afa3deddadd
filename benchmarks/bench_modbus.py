"""Modbus registers per second: the batched request plan against one request per tag.

A pymodbus server (``ModbusDeviceServer``) runs in its own process on loopback and serves one
unit with ``--tags`` tags of mixed types laid out back to back (float32 ABCD and CDAB, int32,
uint16, float64: 2.2 registers per tag on average). In this process the same ModbusCollector
polls it for ``--seconds`` with the merged plan, then with ``merge=False`` (what a collector
that reads tag by tag does), in the same run against the same server. Registers/s counts the
registers the tags occupy (the useful ones), so the two modes are compared on equal work.

    .venv/bin/python benchmarks/bench_modbus.py [--tags 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse.collectors.modbus import ModbusCollector
from plantpulse.collectors.modbus_config import ModbusSource, register_count
from plantpulse.collectors.modbus_plan import encode
from plantpulse.samples import Quality

LOWER_IS_BETTER = frozenset({"requests/poll", "ms/poll", "client CPU ms/poll"})
KINDS = (("float32", "ABCD"), ("float32", "CDAB"), ("int32", "ABCD"), ("uint16", "ABCD"), ("float64", "DCBA"))


def tags(n: int) -> list[dict[str, Any]]:
    out, address = [], 0
    for i in range(n):
        type_, order = KINDS[i % len(KINDS)]
        out.append({"name": f"line1/m{i:05d}/v", "address": address, "type": type_, "byte_order": order})
        address += register_count(type_)
    return out


def source(n: int, port: int) -> ModbusSource:
    return ModbusSource.model_validate(
        {
            "kind": "modbus",
            "name": "bench",
            "tcp": {"host": "127.0.0.1", "port": port},
            "timeout": "60s",
            "request_timeout": "5s",
            "tags": tags(n),
        }
    )


async def serve(n: int) -> None:
    """The server process: print the port, serve until stdin closes."""
    from plantpulse.simulators.modbus import ModbusDeviceServer

    src = source(n, 1)
    cells: dict[int, int] = {}
    for i, t in enumerate(src.tags):
        for j, w in enumerate(encode(float(i % 1000), t)):
            cells[t.address + j] = w
    async with ModbusDeviceServer({1: {"holding": cells}}) as server:
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def measure(src: ModbusSource, merge: bool, seconds: float) -> dict[str, float]:
    collector = ModbusCollector(src, merge=merge)
    registers = sum(t.count for t in src.tags)
    try:
        await collector.read()  # connect, warm up
        polls, started = 0, time.perf_counter()
        cpu0 = time.process_time()
        while (elapsed := time.perf_counter() - started) < seconds or polls < 3:
            samples = await collector.read()
            assert all(s.quality == Quality.GOOD for s in samples)
            polls += 1
        cpu = time.process_time() - cpu0
    finally:
        await collector.close()
    return {
        "requests/poll": len(collector.requests),
        "polls/s": polls / elapsed,
        "registers/s": registers * polls / elapsed,
        "tags/s": len(src.tags) * polls / elapsed,
        "ms/poll": 1000 * elapsed / polls,
        "client CPU ms/poll": 1000 * cpu / polls,
    }


async def both(src: ModbusSource, seconds: float) -> tuple[dict[str, float], dict[str, float]]:
    return await measure(src, True, seconds), await measure(src, False, seconds)


def main(n: int, seconds: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--tags", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        src = source(n, int(proc.stdout.readline()))
        batched, single = asyncio.run(both(src, seconds))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)
    registers = sum(t.count for t in src.tags)
    print(f"{n} tags, {registers} registers, one unit on loopback, {seconds:g}s per mode")
    print(f"{'':22}{'batched':>14}{'per tag':>14}{'batched advantage':>20}")
    for key in batched:
        b, s = batched[key], single[key]
        gain = s / b if key in LOWER_IS_BETTER else b / s
        print(f"{key:22}{b:>14,.1f}{s:>14,.1f}{gain:>19.1f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(serve(a.tags))
    else:
        main(a.tags, a.seconds)
