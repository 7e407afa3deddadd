"""Per-tag sums of one stretch of time: what every KPI kind is computed from.

A stretch (a segment between two calendar boundaries, or a whole window) is summarised per
tag as: the time integral of the held good value, its min and max, the counter increments
(and how many were resets or wraps), the time in a running state, the time outside a band,
time per histogram bin; per coverage group (the input tags of one KPI stream), the time every
input had a good value. Times are int64 ns, so they add exactly; float sums are only ever
added in time order, one segment at a time, so any cut of the input gives the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from plantpulse.rules.arrays import fj, grow, jf

# name -> (dtype, initial value); min/max combine with minimum/maximum, the rest add
TAG_FIELDS: dict[str, tuple[type, float]] = {
    "int": (np.float64, 0.0),
    "min": (np.float64, np.inf),
    "max": (np.float64, -np.inf),
    "inc": (np.float64, 0.0),
    "resets": (np.int64, 0),
    "run": (np.int64, 0),
    "out": (np.int64, 0),
}
_FLOATS = ("int", "min", "max", "inc")


class Acc:
    """Sums per tag (``TAG_FIELDS``), per histogram bin (``hist``) and per coverage group (``cov``)."""

    __slots__ = ("cov", "f", "hist")

    def __init__(self, ntags: int = 0, nbins: int = 0, ngroups: int = 0) -> None:
        self.f: dict[str, npt.NDArray[Any]] = {
            name: np.full(ntags, init, dtype=dt) for name, (dt, init) in TAG_FIELDS.items()
        }
        self.hist = np.zeros(nbins, dtype=np.int64)
        self.cov = np.zeros(ngroups, dtype=np.int64)

    def grow(self, ntags: int, nbins: int, ngroups: int) -> None:
        for name, (_, init) in TAG_FIELDS.items():
            self.f[name] = grow(self.f[name], ntags, init)
        self.hist = grow(self.hist, nbins, 0)
        self.cov = grow(self.cov, ngroups, 0)

    def fold(self, other: Acc) -> None:
        """Add ``other`` (a later stretch) into this one."""
        for name, arr in self.f.items():
            src = other.f[name][: len(arr)]
            if name == "min":
                np.minimum(arr[: len(src)], src, out=arr[: len(src)])
            elif name == "max":
                np.maximum(arr[: len(src)], src, out=arr[: len(src)])
            else:
                arr[: len(src)] += src
        n = min(len(self.hist), len(other.hist))
        self.hist[:n] += other.hist[:n]
        g = min(len(self.cov), len(other.cov))
        self.cov[:g] += other.cov[:g]

    def reset(self) -> None:
        for name, (_, init) in TAG_FIELDS.items():
            self.f[name].fill(init)
        self.hist.fill(0)
        self.cov.fill(0)

    def dump(self, tags: npt.NDArray[np.intp], bins: list[tuple[int, int]], groups: int) -> dict[str, Any]:
        """Plain data: per-tag fields for the tag ids ``tags`` (in that order), histogram slices
        ``bins`` [(offset, n)] and the first ``groups`` coverage sums."""
        out: dict[str, Any] = {}
        for name, arr in self.f.items():
            vals = arr[tags].tolist()
            out[name] = [jf(x) if np.isfinite(x) else None for x in vals] if name in _FLOATS else vals
        out["hist"] = [self.hist[o : o + n].tolist() for o, n in bins]
        out["cov"] = self.cov[:groups].tolist()
        return out

    def load(
        self, data: dict[str, Any], tags: npt.NDArray[np.intp], bins: list[tuple[int, int]], groups: list[int]
    ) -> None:
        """Inverse of ``dump`` into already grown arrays (tags, bins and groups remapped)."""
        for name, arr in self.f.items():
            vals = data[name]
            if name in _FLOATS:
                init = TAG_FIELDS[name][1]
                arr[tags] = np.array([init if x is None else fj(x) for x in vals], dtype=np.float64)
            else:
                arr[tags] = np.array(vals, dtype=np.int64)
        for (o, n), h in zip(bins, data["hist"], strict=True):
            self.hist[o : o + n] = h
        if groups:
            self.cov[np.array(groups, dtype=np.intp)] = data["cov"]
