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
