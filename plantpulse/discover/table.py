"""Aligned text columns for the tables discover shows (CJK characters take two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["columns"]


def columns(rows: Sequence[Sequence[str]], gap: int = 2) -> list[str]:
    """Each row as one line, every column but the last padded to the widest cell."""
    if not rows:
        return []
    n = max(len(r) for r in rows)
    widths = [max((_width(r[i]) for r in rows if i < len(r)), default=0) for i in range(n - 1)]
    out = []
    for r in rows:
        cells = [_pad(c, widths[i]) if i < n - 1 else c for i, c in enumerate(r)]
        out.append((" " * gap).join(cells).rstrip())
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
