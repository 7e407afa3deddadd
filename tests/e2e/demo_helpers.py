"""Reading a demo subprocess's output line by line, as a person watching it would."""

from __future__ import annotations

import asyncio
import re


async def read_until(stream: asyncio.StreamReader, pattern: str, within: float) -> list[str]:
    """Lines up to and including the first that matches ``pattern`` (a regex)."""
    lines: list[str] = []
    async with asyncio.timeout(within):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"output ended before {pattern!r}: {lines}")
            lines.append(raw.decode("utf-8").rstrip("\n"))
            if re.search(pattern, lines[-1]):
                return lines


async def stop(proc: asyncio.subprocess.Process, sig: int, summary: str) -> list[str]:
    """Signal the demo, read on to its summary line (a regex), and see it exit 0."""
    assert proc.stdout is not None
    proc.send_signal(sig)
    rest = await read_until(proc.stdout, summary, 20)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    return rest


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Kill a demo a failed test left running."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
