"""Small numpy helpers shared by the stream evaluators."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
INTP = npt.NDArray[np.intp]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

NONE = np.iinfo(np.int64).min
"""Sentinel for "no time" in int64 state arrays (no pending run, no sample yet)."""


def grow(arr: npt.NDArray[Any], n: int, fill: Any) -> npt.NDArray[Any]:
    """``arr`` extended along axis 0 to at least ``n`` rows (capacity doubles), new rows = fill."""
    if len(arr) >= n:
        return arr
    cap = max(n, 2 * len(arr), 16)
    out = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def group_starts(keys: npt.NDArray[Any]) -> INTP:
    """Start index of every run of equal consecutive keys (keys grouped already)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    brk = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate(([0], brk)).astype(np.intp)


def ragged_index(starts: INTP, counts: INTP) -> INTP:
    """Concatenation of ``range(s, s + c)`` for every (s, c) without a Python loop."""
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.intp)


def jf(x: float) -> float | None:
    """Float for JSON state: NaN becomes None so snapshots stay strict JSON."""
    return None if math.isnan(x) else float(x)


def fj(x: float | None) -> float:
    return math.nan if x is None else float(x)


def jt(x: int) -> int | None:
    return None if x == NONE else int(x)


def tj(x: int | None) -> int:
    return NONE if x is None else int(x)
