"""Which samples of one source the pipeline takes in (pure: arrival time in, decisions out).

Two guards against a source that would otherwise break every rule:

* **Event time window.** A sample must be stamped within ``[arrival - behind, arrival +
  ahead]``. One clock a year ahead would otherwise move the watermark a year forward and fire
  every pending ``for`` at once; 1970 (a device that lost its clock) would be stored as if it
  were real. ``behind`` is generous by default, so gateways can back-fill their buffers.
* **Tag bound.** A wildcard subscription creates one tag per topic: beyond ``max_tags``
  distinct tags per source, samples of new tags are refused (the tags named in the config
  always count and are always taken).

Refused samples are quarantined by cause (``ahead``, ``behind``, ``tag-limit``), never
evaluated, stored with the data or counted in the watermark. The collector runner applies
this to every sample it delivers, for every collector kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import Field

from plantpulse.samples import Sample
from plantpulse.schema import Duration, StrictModel

__all__ = ["AHEAD", "BEHIND", "TAG_LIMIT", "Accept", "Admission"]

AHEAD, BEHIND, TAG_LIMIT = "ahead", "behind", "tag-limit"


class Accept(StrictModel):
    """``accept:`` on every source (docs/configuration.md, "Accepted samples")."""

    ahead: Duration = Field(
        5 * 60_000_000_000, ge=0, description="samples stamped later than arrival + ahead are quarantined"
    )
    behind: Duration = Field(
        7 * 86_400_000_000_000,
        ge=0,
        description="samples stamped earlier than arrival - behind are quarantined",
    )
    max_tags: int = Field(
        10_000, ge=1, description="distinct tags per source; samples of further tags are quarantined"
    )


class Admission:
    """Splits delivered samples into admitted ones and quarantined ones, by cause."""

    def __init__(self, accept: Accept, configured: Iterable[str] = ()) -> None:
        self.accept = accept
        self._configured = frozenset(configured)
        self._discovered: set[str] = set()

    @property
    def tags(self) -> int:
        """Distinct tags admitted so far (configured ones count from the start)."""
        return len(self._configured) + len(self._discovered)

    def split(
        self, samples: Sequence[Sample], arrival: int
    ) -> tuple[Sequence[Sample], dict[str, list[Sample]]]:
        """``(admitted, {cause: quarantined})``; admitted keeps the order (and is ``samples``
        itself when everything is fine, the usual case, at the cost of one pass)."""
        lo, hi = arrival - self.accept.behind, arrival + self.accept.ahead
        configured, discovered = self._configured, self._discovered
        stamps = [s.ts for s in samples]
        new = {s.tag for s in samples}
        new -= configured
        new -= discovered
        if (
            lo <= min(stamps, default=lo)
            and max(stamps, default=hi) <= hi
            and self.tags + len(new) <= self.accept.max_tags
        ):
            discovered |= new
            return samples, {}
        admitted: list[Sample] = []
        refused: dict[str, list[Sample]] = {}
        room = self.accept.max_tags - self.tags
        for s in samples:
            if s.ts > hi:
                refused.setdefault(AHEAD, []).append(s)
            elif s.ts < lo:
                refused.setdefault(BEHIND, []).append(s)
            elif s.tag in configured or s.tag in discovered:
                admitted.append(s)
            elif room > 0:
                discovered.add(s.tag)
                room -= 1
                admitted.append(s)
            else:
                refused.setdefault(TAG_LIMIT, []).append(s)
        return admitted, refused
