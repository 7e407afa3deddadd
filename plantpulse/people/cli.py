"""``plantpulse roster show | check``: who holds each role for an asset, and where nobody does.

Only the parts of ``plant.yaml`` a roster reads are validated: ``site``, ``team`` (people and
their roles, shifts, crews, rotations, assignments, overrides, policies, maintenance) and, for
``check``, the tag names of ``sources``. The rule files are not read, and no secret is needed:
people's contact URLs and ``team.links`` are not read at all (a contact counts by its channel
name only), nor is any ``password``, ``token``, ``secret`` or notification URL, so an unset
``${VAR}`` there is no problem here (``plantpulse check`` still reports it). The shift office
can display and check a roster on a machine that holds no secrets. Times are read and printed
in the site's zone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.errors import Problem
from plantpulse.people.roster import Roster
from plantpulse.timefmt import NS_PER_S, format_duration


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``roster show`` and ``roster check`` to ``plantpulse``."""
    roster = sub.add_parser("roster", help="who is on shift; gaps in the roster")
    rsub = roster.add_subparsers(dest="roster_command", metavar="SUBCOMMAND", required=True)

    show = rsub.add_parser("show", help="who holds each role for an asset at a time")
    show.add_argument("-c", "--config", required=True, help="plant.yaml")
    show.add_argument("--asset", required=True, help="asset path, e.g. line1/weld01")
    show.add_argument("--at", help='site-local time, e.g. "2026-12-01 23:30" (default: now)')
    show.set_defaults(func=_show)

    check = rsub.add_parser("check", help="report roles nobody covers; exit 1 when there are gaps")
    check.add_argument("-c", "--config", required=True, help="plant.yaml")
    check.add_argument("--days", type=int, default=28, help="how many days to check (default 28)")
    check.add_argument("--from", dest="start", help="first site-local day or time (default: today 00:00)")
    check.add_argument("--step", default="15m", help="sampling step (default 15m)")
    check.set_defaults(func=_check)


_SECRETS = frozenset({"contacts", "links", "password", "secret", "token", "urls"})
"""Keys whose values a roster never reads: an unset ``${VAR}`` below them is no problem here."""
_CONTACT = "json://localhost"
"""What each contact URL is read as: the channel name is all a roster (and its checks) use."""


def _load(path: str, *, sources: bool = False) -> tuple[PlantConfig, Roster]:
    """The plant as far as a roster reads it (module docstring); ``sources`` for their tags."""
    doc = yamlsrc.load(path, interpolate_env=True)
    data = doc.data if isinstance(doc.data, dict) else {}
    read = ("site", "team", "sources") if sources else ("site", "team")
    view: dict[str, Any] = {k: data[k] for k in read if k in data}
    team = view.get("team")
    if isinstance(team, dict):
        team = {k: v for k, v in team.items() if k != "links"}
        people = team.get("people")
        if isinstance(people, dict):
            team["people"] = {name: _no_contacts(person) for name, person in people.items()}
        view["team"] = team
    problems = [p for p in doc.problems if _read_by_roster(p, read)]
    plant = yamlsrc.validate(PlantConfig, dataclasses.replace(doc, data=view, problems=problems))
    return plant, Roster(plant.team, plant.site.timezone)


def _no_contacts(person: Any) -> Any:
    if not isinstance(person, dict) or not isinstance(person.get("contacts"), dict):
        return person
    return {**person, "contacts": dict.fromkeys(person["contacts"], _CONTACT)}


def _read_by_roster(problem: Problem, read: tuple[str, ...]) -> bool:
    """Whether a loading problem (duplicate key, unset variable) is in a value a roster reads."""
    if not problem.where:
        return True  # a duplicate top-level key
    parts = problem.where.split(".")
    if parts[0] not in read or _SECRETS.intersection(parts):
        return False
    # of a source, only its tag names matter
    return parts[0] != "sources" or "tags" in parts or "subscriptions" in parts


def _parse_local(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(
            f"plantpulse roster: invalid time {text!r}; write it like 2026-12-01 23:30"
        ) from None
    return dt


def _at(roster: Roster, text: str | None) -> int:
    if text is None:
        return time.time_ns()
    dt = _parse_local(text)
    if dt.tzinfo is not None:
        return int(dt.timestamp()) * NS_PER_S
    return roster.to_ns(dt)


def _fmt(roster: Roster, ns: int) -> str:
    return roster.local(ns).strftime("%Y-%m-%d %H:%M %Z")


def _show(args: argparse.Namespace) -> int:
    plant, roster = _load(args.config)
    at = _at(roster, args.at)
    asset = args.asset.strip("/")
    print(f"{asset or '(site)'} at {_fmt(roster, at)} ({plant.site.timezone})")
    on_shift = roster.on_shift(asset, at)
    if not on_shift:
        print("  no roles are assigned to this asset or above it")
        return 0
    width = max(len(r) for r in on_shift)
    for role, names in on_shift.items():
        print(f"  {role:<{width}}  {', '.join(names) if names else '(nobody)'}")
    windows = [w for w in roster.maintenance(asset) if w[0] <= at < w[1]]
    for _start, end in windows:
        print(f"  maintenance until {_fmt(roster, end)}: notifications are held")
    return 0


def _check(args: argparse.Namespace) -> int:
    plant, roster = _load(args.config, sources=True)
    try:
        from plantpulse.timefmt import parse_duration

        step = parse_duration(args.step)
    except ValueError as e:
        print(f"plantpulse roster check: {e}", file=sys.stderr)
        return 2
    if args.days < 1 or step <= 0:
        print("plantpulse roster check: --days and --step must be positive", file=sys.stderr)
        return 2
    if args.start:
        start = _at(roster, args.start)
    else:
        today = roster.local(time.time_ns()).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
        start = roster.to_ns(today)
    end = roster.to_ns(roster.local(start).replace(tzinfo=None) + timedelta(days=args.days))
    team = plant.team
    required = [w for p in team.policies.values() for s in p.steps for w in s.to if w not in team.people]
    assets = {tag.name.rpartition("/")[0] for src in plant.sources for tag in src.tags}
    gaps = roster.gaps(start, end, step, roster.check_pairs(required, assets))
    span = f"{_fmt(roster, start)} .. {_fmt(roster, end)}"
    if not gaps:
        print(f"roster check: every role is covered {span} ({plant.site.timezone})")
        return 0
    for g in gaps:
        print(
            f"{g.asset or '(site)'}: {g.role}: nobody {_fmt(roster, g.start)} .. {_fmt(roster, g.end)}"
            f" ({format_duration(g.end - g.start)})"
        )
    print(f"roster check: {len(gaps)} gap(s) {span} ({plant.site.timezone})", file=sys.stderr)
    return 1
