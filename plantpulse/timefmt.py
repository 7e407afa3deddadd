"""Durations and timestamps as users write them, converted to int64 nanoseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "ms": NS_PER_MS,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
MAX_DURATION = 36_500 * _UNITS["d"]
"""100 years: any duration longer is a typo, and added to a timestamp it must still fit int64 ns."""


def parse_duration(text: str | int | float) -> int:
    """``"500ms"``, ``"3s"``, ``"2m"``, ``"1h30m"`` -> nanoseconds. A bare number means seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration is written like 500ms, 3s, 2m or 1h")  # noqa: TRY004 (pydantic reports ValueError)
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(text * NS_PER_S, text)
    s = text.strip()
    pos, total = 0, 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        number, unit = m.group(1), _UNITS[m.group(2)]
        if len(number) > 30:  # no duration needs more digits; int() would refuse thousands
            raise _too_long(text)
        total += _bounded(float(number) * unit if "." in number else int(number) * unit, text)
        pos = m.end()
    if pos == 0 or pos != len(s):
        raise ValueError(f"invalid duration {text!r}: write it like 500ms, 3s, 2m or 1h")
    return _bounded(total, text)


def _too_long(text: str | int | float) -> ValueError:
    shown = str(text) if len(str(text)) <= 40 else str(text)[:40] + "…"
    return ValueError(f"duration {shown!r} is longer than 100 years (36500d)")


def _bounded(ns: float, text: str | int | float) -> int:
    if ns != ns:  # noqa: PLR0124 (NaN)
        raise ValueError("a duration is a number, not NaN")
    if not ns <= MAX_DURATION:  # also infinity
        raise _too_long(text)
    return round(ns)


def format_duration(ns: int) -> str:
    """Short human form: ``3s``, ``1m30s``, ``250ms``, ``1h2m``."""
    if ns < NS_PER_S:
        ms = ns / NS_PER_MS
        return f"{ms:g}ms"
    secs = round(ns / NS_PER_MS) / 1000  # milliseconds are the finest a person reads
    h, rem = divmod(int(secs), 3600)
    m, s_int = divmod(rem, 60)
    frac = secs - int(secs)
    parts = []
    if h:
        parts.append(f"{h}h")
    if m:
        parts.append(f"{m}m")
    if s_int or frac or not parts:
        parts.append(f"{s_int + frac:g}s" if not h else f"{s_int}s")
    return "".join(parts)


def parse_ts(text: str | int | float) -> int:
    """ISO-8601 with offset or ``Z`` (naive means UTC), or Unix epoch seconds -> ns."""
    if isinstance(text, int | float):
        return round(text * NS_PER_S)
    s = text.strip()
    try:
        return round(float(s) * NS_PER_S)
    except ValueError:
        pass
    dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith(("Z", "z")) else s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    whole = int(dt.timestamp())
    return whole * NS_PER_S + dt.microsecond * 1000


def iso_ms(ns: int) -> str:
    """``2026-01-01T08:00:03.000Z``: ISO-8601 UTC with milliseconds (SPEC §4 output form)."""
    secs, rem = divmod(ns, NS_PER_S)
    dt = datetime.fromtimestamp(secs, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{rem // NS_PER_MS:03d}Z"


def to_datetime(ns: int) -> datetime:
    secs, rem = divmod(ns, NS_PER_S)
    return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)


def from_datetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS_PER_S + dt.microsecond * 1000
