"""KPI streams: one per (KPI, asset), matched from tag names as the registry grows.

A stream exists for an asset that matches the KPI's ``assets`` and has at least one of the
KPI's input tags (an asset with none of them is not measured by it at all; an asset missing
some of them gets a stream whose coverage shows the gap). Alert counts have no input tags:
every asset above a known tag that matches their ``assets`` gets a stream. Input tags carry
what the per-tag sums need: counter modulus, running set, band, histogram bins; one of each
per tag (the loader refuses two for the same tag name template; at run time the first wins).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from plantpulse.kpi.model import Kpi
from plantpulse.rules.arrays import grow
from plantpulse.samples import TagRegistry

B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

COUNTER_INPUTS = {"yield": (0, 1), "ratio": (0, 1), "performance": (0,)}
STATE_INPUT = {"availability": 0, "performance": 1}
COUNTER, STATE, BAND, HIST, MEAN, MINMAX = 1, 2, 4, 8, 16, 32
"""Bits of ``Streams.feat``: what the per-tag sums compute for a tag. A changed row of a MEAN
(MINMAX) tag makes the integral (min and max) be kept for every changed row of that batch,
and these sums are only read for the tags that have the bit."""


@dataclass
class Table:
    """The streams of one KPI: asset, input tag ids and coverage group of each."""

    kpi: Kpi
    assets: list[str] = field(default_factory=list)
    inputs: list[tuple[int, ...]] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)


def _template_regex(template: str) -> re.Pattern[str] | None:
    if "{asset}" not in template:
        return None
    first, second, *rest = template.split("{asset}")
    body = re.escape(first) + "(?P<asset>.+?)" + re.escape(second)
    body += "".join("(?P=asset)" + re.escape(p) for p in rest)
    return re.compile(body + r"\Z", re.DOTALL)


def ancestors_of(name: str) -> list[str]:
    """``a/b/c`` -> ``a/b``, ``a`` (the assets a tag lies under)."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


class Streams:
    """Every KPI's streams and the per-tag features they need; grows with the registry."""

    def __init__(self, kpis: Sequence[Kpi], tags: TagRegistry) -> None:
        self.tags = tags
        self.kpis = [k for k in kpis if k.kind != "oee"]
        self.tables = {k.id: Table(k) for k in self.kpis}
        self._patterns = [(k, i, _template_regex(t), t) for k in self.kpis for i, t in enumerate(k.inputs)]
        self._counts = [k for k in self.kpis if k.kind == "alert_count"]
        self._seen = 0
        n = 0
        self.tracked: B = np.zeros(n, dtype=np.bool_)
        self.feat = np.zeros(n, dtype=np.uint8)
        self.modulus: F64 = np.zeros(n, dtype=np.float64)
        self.runset: I64 = np.zeros(n, dtype=np.int64)
        self.runsets: list[F64] = []
        self.band_lo: F64 = np.zeros(n, dtype=np.float64)
        self.band_hi: F64 = np.zeros(n, dtype=np.float64)
        self.hist_off: I64 = np.zeros(n, dtype=np.int64)
        self.hist_lo: F64 = np.zeros(n, dtype=np.float64)
        self.hist_w: F64 = np.zeros(n, dtype=np.float64)
        self.hist_n: I64 = np.zeros(n, dtype=np.int64)
        self.nbins = 0
        self.hist_tags: list[int] = []
        self.groups: list[tuple[int, ...]] = []
        self._group_index: dict[tuple[int, ...], int] = {}
        self.tag_groups: dict[int, list[int]] = {}
        self.version = 0  # bumped whenever the tracked set changes
        self._grow()

    def __len__(self) -> int:
        return len(self.tracked)

    def _grow(self) -> None:
        n = len(self.tags)
        self.tracked = grow(self.tracked, n, False)
        self.feat = grow(self.feat, n, 0)
        self.modulus = grow(self.modulus, n, np.nan)
        self.runset = grow(self.runset, n, -1)
        self.band_lo = grow(self.band_lo, n, np.nan)
        self.band_hi = grow(self.band_hi, n, np.nan)
        self.hist_off = grow(self.hist_off, n, -1)
        self.hist_lo = grow(self.hist_lo, n, 0.0)
        self.hist_w = grow(self.hist_w, n, 1.0)
        self.hist_n = grow(self.hist_n, n, 0)

    def sync(self) -> list[int]:
        """Match tags registered since the last call; returns the coverage groups created."""
        new_groups: list[int] = []
        while self._seen < len(self.tags):
            name = self.tags.name(self._seen)
            self._seen += 1
            for kpi, asset in self._matches(name):
                new_groups.extend(self._add(kpi, asset))
        self._grow()
        return new_groups

    def _matches(self, name: str) -> list[tuple[Kpi, str]]:
        found: list[tuple[Kpi, str]] = []
        for kpi, _, rx, template in self._patterns:
            if rx is None:
                if name == template and not any(c in kpi.assets for c in "*?["):
                    found.append((kpi, kpi.assets.strip("/")))
                continue
            m = rx.match(name)
            if m is not None and kpi.matches_asset(m.group("asset")):
                found.append((kpi, m.group("asset")))
        for kpi in self._counts:
            found.extend((kpi, a) for a in ancestors_of(name) if kpi.matches_asset(a))
        return found

    def _add(self, kpi: Kpi, asset: str) -> list[int]:
        table = self.tables[kpi.id]
        if asset in table.index:
            return []
        ids = tuple(self.tags.id(t.replace("{asset}", asset)) for t in kpi.inputs)
        self._grow()
        table.index[asset] = len(table.assets)
        table.assets.append(asset)
        table.inputs.append(ids)
        if not ids:
            table.groups.append(-1)
            return []
        for tid in ids:
            if not self.tracked[tid]:
                self.tracked[tid] = True
                self.version += 1
        self._features(kpi, ids)
        key = tuple(sorted(set(ids)))
        g = self._group_index.get(key)
        created = []
        if g is None:
            g = len(self.groups)
            self.groups.append(key)
            self._group_index[key] = g
            for tid in key:
                self.tag_groups.setdefault(tid, []).append(g)
            created.append(g)
        table.groups.append(g)
        return created

    def _features(self, kpi: Kpi, ids: tuple[int, ...]) -> None:
        for i in COUNTER_INPUTS.get(kpi.kind, ()):
            tid = ids[i]
            if not self.feat[tid] & COUNTER:
                self.feat[tid] |= COUNTER
                self.modulus[tid] = np.nan if kpi.modulus is None else kpi.modulus
        if kpi.kind in STATE_INPUT:
            tid = ids[STATE_INPUT[kpi.kind]]
            if self.runset[tid] < 0:
                values = np.array(kpi.running, dtype=np.float64)
                found = next((j for j, r in enumerate(self.runsets) if np.array_equal(r, values)), None)
                if found is None:
                    found = len(self.runsets)
                    self.runsets.append(values)
                self.runset[tid] = found
                self.feat[tid] |= STATE
        if kpi.kind == "time_weighted":
            tid = ids[0]
            if kpi.stat == "mean":
                self.feat[tid] |= MEAN
            if kpi.stat in ("min", "max"):
                self.feat[tid] |= MINMAX
            if kpi.band is not None and np.isnan(self.band_lo[tid]):
                self.band_lo[tid], self.band_hi[tid] = kpi.band
                self.feat[tid] |= BAND
            if kpi.bins is not None and self.hist_off[tid] < 0:
                lo, hi, width = kpi.bins
                n = round((hi - lo) / width)
                self.hist_off[tid], self.hist_lo[tid], self.hist_w[tid], self.hist_n[tid] = (
                    self.nbins,
                    lo,
                    width,
                    n,
                )
                self.nbins += n
                self.feat[tid] |= HIST
                self.hist_tags.append(tid)
