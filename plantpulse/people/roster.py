"""Who holds which role for which asset at a given instant: pure, DST-correct roster resolution.

Shifts are written in site wall-clock time; each shift instance is mapped to UTC by
``wall_to_ns`` (a skipped time is the jump, a repeated one its first occurrence), so on a
daylight-saving night a 22:00-06:00 shift lasts 7 or 9 real hours and consecutive shifts never
overlap or leave a hole: the same wall time maps to the same instant for the shift that ends
and the one that starts.

Resolution for (asset, role, t):
1. Walk the asset's ancestors, most specific first (``line1/weld01``, ``line1``, the site).
2. At each level, take everyone its assignments give the role at ``t`` (named people, fixed
   crews, or the crew a rotation puts on the shift that covers ``t``; crew members count only
   if they have the role), then apply the overrides in force by kind, never by file order:
   swaps, then covers (chained), then leave removes whoever is away.
3. The first level that leaves somebody wins; a level with nobody on duty at ``t`` falls
   through to its parent, so a day-shift specialist on one welder does not make that welder
   unstaffed at night.
4. Covers with ``roles`` add their person (unless away) on top for the subtree they name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from plantpulse.people.schema import (
    ROOT,
    WEEKDAYS,
    Assignment,
    Cover,
    Leave,
    Shift,
    Swap,
    TeamConfig,
    norm_asset,
)
from plantpulse.timefmt import NS_PER_S


def in_subtree(asset: str, root: str) -> bool:
    """Path containment: ``line1`` contains ``line1/weld01`` but not ``line10``."""
    return root in (ROOT, asset) or asset.startswith(root + "/")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_s(dt: datetime) -> int:
    return (dt.replace(microsecond=0) - _EPOCH) // timedelta(seconds=1)


def wall_to_ns(local: datetime, zone: ZoneInfo) -> int:
    """A naive wall-clock time in ``zone`` -> UTC ns, defined on both DST nights:

    * a time the clock skips (02:30 on the spring-forward night) is the instant the clock jumps,
      the first that exists after it (03:00), so whatever starts or ends at a skipped time does
      so at the jump, and a shift that ends there meets the next one without a gap;
    * a time the clock shows twice (02:30 on the fall-back night) is its first occurrence
      (``fold=0``); an offset written by the user picks the other (see ``roster show --at``).
    """
    first = local.replace(tzinfo=zone, fold=0)
    secs = _utc_s(first)
    if datetime.fromtimestamp(secs, zone).replace(tzinfo=None) == local.replace(microsecond=0):
        return secs * NS_PER_S + local.microsecond * 1000
    # skipped: fold=0 read it with the offset before the jump (too late by the gap), fold=1 with
    # the one after (too early); the jump lies between, where the offset changes
    before, after = _utc_s(local.replace(tzinfo=zone, fold=1)), secs
    offset = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        mid = (before + after) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == offset:
            after = mid
        else:
            before = mid
    return after * NS_PER_S


def _covering(name: str, covers: dict[str, list[str]], chain: tuple[str, ...]) -> list[str]:
    """Who does ``name``'s duty: ``name``, or whoever covers for them, down the chain of covers
    (a cover that leads back into the chain ends it, so a circle of covers still has somebody)."""
    subs = [s for s in covers.get(name, []) if s not in chain]
    if not subs:
        return [name]
    return [c for s in subs for c in _covering(s, covers, (*chain, s))]


@dataclass(frozen=True, slots=True)
class Gap:
    """``role`` has nobody for ``asset`` during [start, end) (UTC ns)."""

    asset: str
    role: str
    start: int
    end: int


class Roster:
    """Compiled view of a TeamConfig in the site's time zone. Pure: no clock, no I/O."""

    def __init__(self, team: TeamConfig, timezone: str = "UTC") -> None:
        self.team = team
        self.zone = ZoneInfo(timezone)
        self._parent: dict[str, str] = {}
        for parent, children in team.assets.items():
            for child in children:
                self._parent[norm_asset(child)] = norm_asset(parent)
        self._by_level: dict[str, dict[str, list[Assignment]]] = {}
        for a in team.assignments:
            for role in a.roles:
                self._by_level.setdefault(a.path, {}).setdefault(role, []).append(a)
        self._windows = [(o, self.to_ns(o.from_), self.to_ns(o.to)) for o in team.overrides]
        self._to_ns_cached = lru_cache(maxsize=4096)(self._wall_to_ns)

    # -- time -------------------------------------------------------------------------------

    def _wall_to_ns(self, day: date, minutes: int) -> int:
        return wall_to_ns(datetime(day.year, day.month, day.day, minutes // 60, minutes % 60), self.zone)

    def to_ns(self, local: datetime) -> int:
        """Site wall-clock (naive) -> UTC ns, read as ``wall_to_ns`` says."""
        return wall_to_ns(local, self.zone)

    def local(self, at_ns: int) -> datetime:
        """UTC ns -> aware datetime in the site's zone."""
        secs, rem = divmod(at_ns, NS_PER_S)
        return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000).astimezone(self.zone)

    def shift_day(self, shift: Shift, at_ns: int) -> date | None:
        """The local date on which the instance of ``shift`` covering ``at_ns`` started, if any."""
        today = self.local(at_ns).date()
        for day in (today - timedelta(days=1), today):
            if shift.days is not None and WEEKDAYS[day.weekday()] not in shift.days:
                continue
            start = self._to_ns_cached(day, shift.start)
            end = self._to_ns_cached(day + timedelta(days=1) if shift.crosses_midnight else day, shift.end)
            if start <= at_ns < end:
                return day
        return None

    # -- assets -----------------------------------------------------------------------------

    def parent(self, asset: str) -> str | None:
        """Explicit parent from ``team.assets``, else the path parent; None above the site."""
        if asset == ROOT:
            return None
        if asset in self._parent:
            return self._parent[asset]
        return asset.rpartition("/")[0] if "/" in asset else ROOT

    def ancestors(self, asset: str) -> list[str]:
        """``asset`` and every level above it, most specific first, ending with the site (``""``)."""
        out: list[str] = []
        node: str | None = norm_asset(asset)
        while node is not None and node not in out:
            out.append(node)
            node = self.parent(node)
        if out[-1] != ROOT:
            out.append(ROOT)
        return out

    def contains(self, root: str, asset: str) -> bool:
        """Whether ``asset`` lies in the subtree ``root`` (by path or explicit hierarchy)."""
        return norm_asset(root) in self.ancestors(asset)

    # -- resolution -------------------------------------------------------------------------

    def _holders(self, a: Assignment, role: str, at_ns: int) -> list[str]:
        team = self.team
        if a.shift is not None and self.shift_day(team.shifts[a.shift], at_ns) is None:
            return []
        if a.people:
            return list(a.people)
        crews = list(a.crews)
        if a.rotation is not None:
            rot = team.rotations[a.rotation]
            start = rot.start.date()
            cycle = rot.cycle
            for shift_name, pattern in rot.days().items():
                day = self.shift_day(team.shifts[shift_name], at_ns)
                if day is not None:
                    crew = pattern[(day - start).days % cycle]
                    if crew in team.crews:
                        crews.append(crew)
        out = []
        for crew in crews:
            for name in team.crews[crew]:
                person = team.people.get(name)
                if person is not None and role in person.roles:
                    out.append(name)
        return out

    def _in_force(self, at_ns: int) -> list[Leave | Cover | Swap]:
        return [o for o, start, end in self._windows if start <= at_ns < end]

    def _substitute(self, names: list[str], asset: str, overrides: list[Leave | Cover | Swap]) -> list[str]:
        """Apply the overrides in force to one level's scheduled holders, independent of their
        order in the file: swaps exchange scheduled duties, covers then replace whoever holds
        a duty (following chains: C covers for B who covers for A), and leave removes a person
        whatever brought them here."""
        partners: dict[str, list[str]] = {}
        covers: dict[str, list[str]] = {}
        for o in overrides:
            if isinstance(o, Swap) and self.contains(o.asset, asset):
                a, b = o.people
                partners.setdefault(a, []).append(b)
                partners.setdefault(b, []).append(a)
            elif isinstance(o, Cover) and o.for_ is not None and self.contains(o.asset, asset):
                covers.setdefault(o.for_, []).append(o.person)
        away = {o.person for o in overrides if isinstance(o, Leave)}
        out = [c for n in names for p in partners.get(n, [n]) for c in _covering(p, covers, (p,))]
        return [n for n in out if n not in away]

    def holders(self, asset: str, role: str, at_ns: int) -> list[str]:
        """Names holding ``role`` for ``asset`` at ``at_ns``, in config order, no duplicates."""
        overrides = self._in_force(at_ns)
        names: list[str] = []
        for level in self.ancestors(asset):
            entries = self._by_level.get(level, {}).get(role)
            if not entries:
                continue
            found: list[str] = []
            for a in entries:
                found.extend(self._holders(a, role, at_ns))
            found = self._substitute(found, asset, overrides)
            if found:
                names = found
                break
        away = {o.person for o in overrides if isinstance(o, Leave)}
        for o in overrides:
            if (
                isinstance(o, Cover)
                and role in o.roles
                and o.person not in away
                and self.contains(o.asset, asset)
            ):
                names.append(o.person)
        return list(dict.fromkeys(names))

    def roles_for(self, asset: str) -> list[str]:
        """Roles assigned to ``asset`` or any level above it, in config order."""
        levels = set(self.ancestors(asset))
        roles = [r for a in self.team.assignments if a.path in levels for r in a.roles]
        return list(dict.fromkeys(roles))

    def on_shift(self, asset: str, at_ns: int) -> dict[str, list[str]]:
        """role -> people holding it for ``asset`` at ``at_ns``; a role nobody holds maps to ``[]``.

        This is the snapshot stored with an alert at its ``raised_at`` (SPEC §5)."""
        return {role: self.holders(asset, role, at_ns) for role in self.roles_for(asset)}

    def maintenance(self, asset: str) -> list[tuple[int, int]]:
        """Maintenance windows (UTC ns, [start, end)) that cover ``asset``, sorted."""
        return sorted(
            (self.to_ns(m.from_), self.to_ns(m.to))
            for m in self.team.maintenance
            if self.contains(m.asset, asset)
        )

    # -- checks -----------------------------------------------------------------------------

    def check_pairs(self, required: Iterable[str] = (), assets: Iterable[str] = ()) -> list[tuple[str, str]]:
        """(asset, role) pairs worth checking: every assignment's own level, and for each
        ``required`` role (e.g. named by a policy) the highest assets whose whole known subtree has
        no assignment for it at all."""
        pairs = [(a.path, r) for a in self.team.assignments for r in a.roles]
        known = {norm_asset(x) for x in assets} | {a.path for a in self.team.assignments} | set(self._parent)
        known |= set(self._parent.values())
        for role in dict.fromkeys(required):
            chains = {x: self.ancestors(x) for x in known | {ROOT}}
            bare = {
                x
                for x, levels in chains.items()
                if not any(role in self._by_level.get(lv, {}) for lv in levels)
            }
            reported: list[str] = []
            for asset in sorted(bare, key=lambda x: len(chains[x])):
                whole = all(y in bare for y, levels in chains.items() if asset in levels)
                if whole and not any(r in chains[asset] for r in reported):
                    reported.append(asset)
            pairs.extend((u, role) for u in reported)
        return list(dict.fromkeys(pairs))

    def gaps(
        self, start_ns: int, end_ns: int, step_ns: int, pairs: Sequence[tuple[str, str]] | None = None
    ) -> list[Gap]:
        """Intervals in [start, end) where a role has nobody, sampled every ``step_ns``."""
        if step_ns <= 0:
            raise ValueError("step must be positive")
        pairs = self.check_pairs() if pairs is None else pairs
        open_: dict[tuple[str, str], int] = {}
        out: list[Gap] = []
        for t in range(start_ns, end_ns, step_ns):
            for asset, role in pairs:
                covered = bool(self.holders(asset, role, t))
                key = (asset, role)
                if not covered and key not in open_:
                    open_[key] = t
                elif covered and key in open_:
                    out.append(Gap(asset, role, open_.pop(key), t))
        out.extend(Gap(asset, role, t0, end_ns) for (asset, role), t0 in open_.items())
        return sorted(out, key=lambda g: (g.asset, g.role, g.start))
