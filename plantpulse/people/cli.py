"""``plantpulse roster show | check``: who holds each role for an asset, and where nobody does.

Only ``plant.yaml`` itself is validated here (not the rule files), so the shift office can
check a roster without the rules in place. Times are read and printed in the site's zone.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
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


def _load(path: str) -> tuple[PlantConfig, Roster]:
    doc = yamlsrc.load(path, interpolate_env=True)
    plant = yamlsrc.validate(PlantConfig, doc)
    return plant, Roster(plant.team, plant.site.timezone)


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
    plant, roster = _load(args.config)
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
