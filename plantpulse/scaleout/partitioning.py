"""Which partition of the samples topic carries a tag. Pure code.

A rule stream reads its tag and the tags named by its setpoint or expression; all of them must
reach the same evaluator, in order, or the stream would miss inputs. So tags are grouped:
every tag starts in the group of its asset (``line1/weld01``), and each stream's inputs join
their assets' groups (union-find). A group's partition is ``crc32(first asset) % partitions``.

* Collectors compute it from ``plant.yaml`` and the rules alone, so every collector process
  agrees without talking to the others; a tag that appears at run time (MQTT discovery)
  goes with its asset.
* A rule whose expression reads one tag from every asset (a line-wide ambient temperature)
  joins those assets into one group, and so one partition: correct, but it limits the
  parallelism (docs/scale-out.md, "Partition sizing").
* Changing ``kafka.partitions`` moves groups: evaluator state is per partition, so a changed
  count needs a fresh ``kafka.group`` (docs/scale-out.md).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from plantpulse.rules.model import Rule
from plantpulse.samples import asset_of

__all__ = ["Partitioner"]


class Partitioner:
    def __init__(self, tags: Iterable[str], rules: Sequence[Rule], partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self._parent: dict[str, str] = {}
        for tag in tags:
            self._find(asset_of(tag))
            for rule in rules:
                if rule.matches(tag):
                    for name in rule.input_names(tag):
                        self._union(asset_of(tag), asset_of(name))
        self._cache: dict[str, int] = {}

    def _find(self, asset: str) -> str:
        parent = self._parent.setdefault(asset, asset)
        if parent != asset:
            parent = self._parent[asset] = self._find(parent)
        return parent

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:  # the smaller name represents the group: the result does not depend on order
            lo, hi = sorted((ra, rb))
            self._parent[hi] = lo

    def group(self, tag: str) -> str:
        """The group's name: its alphabetically first asset."""
        asset = asset_of(tag)
        return self._find(asset) if asset in self._parent else asset

    def partition(self, tag: str) -> int:
        p = self._cache.get(tag)
        if p is None:
            p = self._cache[tag] = zlib.crc32(self.group(tag).encode()) % self.partitions
        return p
