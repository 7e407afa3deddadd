"""``plantpulse kpi check | report | alarms`` and ``plantpulse trace`` (SPEC §8, docs/kpis.md).

Reports recompute from stored samples through ``Store.read_samples`` (a day at a time, each
tag's held value at ``--from`` first), or from a samples file with ``--data``, with the same
state the live pipeline keeps. Times on the command line are site-local (``2026-12-01`` or
``2026-12-01 06:00``; a bare date as ``--to`` means through the end of that day) or ISO-8601
with an offset.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from plantpulse.config import LoadedConfig, PlantConfig, load_config
from plantpulse.errors import ConfigError, Problem
from plantpulse.kpi.alarms import alarm_kpis
from plantpulse.kpi.batch import compute
from plantpulse.kpi.loader import default_shifts, load_kpi_files
from plantpulse.kpi.model import KpiSet
from plantpulse.kpi.output import write_alarms, write_results, write_trace
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.results import AlertMark, KpiResult
from plantpulse.kpi.schema import WINDOW_KINDS, WindowBy
from plantpulse.kpi.state import KpiState, raises
from plantpulse.kpi.trace import trace, with_on_shift
from plantpulse.people.roster import Roster
from plantpulse.rules.model import glob_regex
from plantpulse.samples import SampleBatch, TagRegistry, asset_of
from plantpulse.timefmt import NS_PER_S, parse_duration, parse_ts

DAY = 86400 * NS_PER_S
ALL = 2**31 - 1  # "no limit" for Store.alerts
STANDING_LOOKBACK = 30 * DAY


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``kpi`` (check, report, alarms) and ``trace`` to ``plantpulse``."""
    kpi = sub.add_parser("kpi", help="KPI files, shift scorecards and alarm-management figures")
    ksub = kpi.add_subparsers(dest="kpi_command", metavar="SUBCOMMAND", required=True)

    c = ksub.add_parser("check", help="validate KPI files (exit 1 with FILE:LINE:COL: message per problem)")
    c.add_argument("paths", nargs="+", metavar="FILE", help="KPI files")
    c.add_argument("-c", "--config", type=Path, help="plant.yaml: also check team names and rule ids")
    c.set_defaults(func=cmd_check)

    r = ksub.add_parser("report", help="recompute KPIs for a past range from stored samples")
    _plant_args(r)
    r.add_argument("--by", choices=WINDOW_KINDS, help="windows (default: shift, or day without shifts)")
    r.add_argument("--asset", metavar="GLOB", help="only these assets (roll-ups included), e.g. line1/**")
    r.add_argument("--format", choices=("table", "csv", "jsonl", "html"), default="table")
    r.add_argument(
        "--data", type=Path, metavar="FILE", help="samples from a CSV/Parquet file instead of the store"
    )
    r.set_defaults(func=cmd_report)

    a = ksub.add_parser("alarms", help="alarm-management KPIs (ISA-18.2 / EEMUA 191) per operator position")
    _plant_args(a)
    a.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    a.set_defaults(func=cmd_alarms)

    t = sub.add_parser("trace", help="parameter changes (setpoints, recipes) with who was on shift")
    t.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    t.add_argument("--asset", required=True, help="asset subtree, e.g. line1/weld01")
    t.add_argument("--since", default="7d", help="how far back from --to (default 7d)")
    t.add_argument("--from", dest="start", help="start instead of --since (site-local or ISO-8601)")
    t.add_argument("--to", dest="end", help="end (default: now)")
    t.add_argument(
        "--data", type=Path, metavar="FILE", help="samples from a CSV/Parquet file instead of the store"
    )
    t.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    t.set_defaults(func=cmd_trace)


def _plant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    p.add_argument("--from", dest="start", required=True, help="site-local (2026-12-01 06:00) or ISO-8601")
    p.add_argument("--to", dest="end", required=True, help="exclusive end; a bare date: through that day")


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"plantpulse: {msg}")


def _instant(roster: Roster, text: str, *, end: bool = False) -> int:
    """Site-local or offset ISO-8601 -> ns; a bare date as an end means through that day."""
    s = text.strip()
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise _fail(
            f"invalid time {text!r}: write 2026-12-01, 2026-12-01 06:00 or an ISO-8601 instant"
        ) from None
    if dt.tzinfo is not None:
        return parse_ts(s)
    if end and len(s) == 10:
        dt += timedelta(days=1)
    return roster.to_ns(dt)


def _range(roster: Roster, args: argparse.Namespace) -> tuple[int, int]:
    start, end = _instant(roster, args.start), _instant(roster, args.end, end=True)
    if end <= start:
        raise _fail("--to must be after --from")
    return start, end


def _load(path: Path) -> tuple[LoadedConfig, KpiSet, Roster, list[Any]]:
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(path)
    plant = loaded.plant
    if plant.approvals is not None:  # the approved versions, not the files on disk (docs/approvals.md)
        from plantpulse.approvals.service import approved

        rules, kset = approved(loaded)
        return loaded, kset, Roster(plant.team, plant.site.timezone), rules
    rules = load_rule_files(loaded.rule_files)
    kset = load_kpi_files(loaded.kpi_files, team=plant.team, rule_ids={r.id for r in rules})
    return loaded, kset, Roster(plant.team, plant.site.timezone), rules


# -- check ---------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    team = rule_ids = None
    if args.config is not None:
        from plantpulse.rules.loader import load_rule_files

        loaded = load_config(args.config)  # also checks the KPI files it names
        team = loaded.plant.team
        rule_ids = {r.id for r in load_rule_files(loaded.rule_files)}
    kset = load_kpi_files(args.paths, team=team, rule_ids=rule_ids)
    n = len(args.paths)
    print(f"ok: {len(kset.kpis)} KPIs in {n} file{'s' if n != 1 else ''}")
    return 0


# -- report --------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    loaded, kset, roster, rules = _load(args.config)
    if not kset.kpis:
        raise _fail(f"{args.config}: no KPIs (list KPI files under kpis:)")
    plant = loaded.plant
    by: WindowBy = args.by or ("shift" if plant.team.shifts else "day")
    if by == "shift" and not plant.team.shifts:
        raise _fail("--by shift needs shifts in the team config")
    plan = KpiPlan(kset, roster, by=by)
    start, end = _range(roster, args)
    if args.data is not None:
        results = _from_file(plan, args.data, rules, start, end)
    else:
        results = asyncio.run(_from_store(plant, plan, start, end))
    keep = glob_regex(args.asset.strip("/")) if args.asset else None
    results = [
        r for r in results if r.window.start >= start and (keep is None or keep.match(r.asset) is not None)
    ]
    title = f"{plant.site.name}: KPIs by {by}, {args.start} .. {args.end}"
    write_results(results, args.format, sys.stdout, {k.id: k for k in kset.kpis}, title=title)
    return 0


def _read_file(path: Path, tags: TagRegistry) -> SampleBatch:
    from plantpulse.samplefile import SampleFileError, SampleReader

    if not path.is_file():
        raise ConfigError([Problem(str(path), 1, 1, "", "no such data file")])
    try:
        return SampleBatch.concat(tags, list(SampleReader(path, tags)))
    except SampleFileError as e:
        raise ConfigError([Problem(str(path), 1, 1, "", str(e).removeprefix(f"{path}: "))]) from None


def _from_file(plan: KpiPlan, path: Path, rules: list[Any], start: int, end: int) -> list[KpiResult]:
    """KPIs of a samples file; alert counts come from the plant's rules run over the same data."""
    tags = TagRegistry()
    batch = _read_file(path, tags)
    marks: list[AlertMark] = []
    if any(k.kind == "alert_count" for k in plan.kpis):
        from plantpulse.rules.backtest import backtest

        marks = raises(backtest(rules, [batch.sorted()], tags).alerts)
    return compute(plan, tags, batch, start=start, end=end, alerts=marks)


async def _from_store(plant: PlantConfig, plan: KpiPlan, start: int, end: int) -> list[KpiResult]:
    from plantpulse.store import open_store

    store = open_store(plant.store)
    await store.open()
    try:
        tags = TagRegistry(sorted(t.name for t in await store.tags()))
        state = KpiState(plan, tags, start=start)
        wanted = [tags.name(int(i)) for i in np.flatnonzero(state.streams.tracked[: len(tags)])]
        marks: list[AlertMark] = []
        if any(k.kind == "alert_count" for k in plan.kpis):
            marks = raises(await store.alerts(start, end, limit=ALL))
        out = state.process(SampleBatch.empty(tags), alerts=marks)
        days = -(-(end - start) // DAY)
        t, i = start, 0
        while t < end:
            b = min(end, t + DAY)
            out += state.process(await store.read_samples(wanted, t, b, tags, prior=t == start))
            out += state.advance(b)
            t, i = b, i + 1
            if sys.stderr.isatty():
                sys.stderr.write(f"\rkpi report: day {i}/{days}")
                sys.stderr.flush()
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return [r for r in out if r.window.end <= end]
    finally:
        await store.close()


# -- alarms --------------------------------------------------------------------------------------
def cmd_alarms(args: argparse.Namespace) -> int:
    from plantpulse.kpi.calendar import Calendar
    from plantpulse.store import open_store

    loaded, kset, roster, _ = _load(args.config)
    start, end = _range(roster, args)
    plant = loaded.plant

    async def read() -> tuple[list[Any], list[Any]]:
        store = open_store(plant.store)
        await store.open()
        try:
            alerts = await store.alerts(start - STANDING_LOOKBACK, end, limit=ALL)
            older = await store.alerts(None, start - STANDING_LOOKBACK, active_only=True, limit=ALL)
            journal = []
            for a in alerts:
                if a.raised_at >= start:
                    journal += await store.journal(a.id)
            return alerts + older, journal
        finally:
            await store.close()

    alerts, journal = asyncio.run(read())
    figures = alarm_kpis(
        alerts,
        journal,
        Calendar(roster),
        kset.alarms,
        start=start,
        end=end,
        shifts=default_shifts(plant.team),
    )
    write_alarms(figures, args.format, sys.stdout)
    return 0


# -- trace ---------------------------------------------------------------------------------------
def cmd_trace(args: argparse.Namespace) -> int:
    loaded, kset, roster, _ = _load(args.config)
    if not kset.parameters:
        raise _fail("no parameter tags declared: add parameters: [tag globs] to a KPI file")
    end = _instant(roster, args.end, end=True) if args.end else time.time_ns()
    if args.start:
        start = _instant(roster, args.start)
    else:
        try:
            start = end - parse_duration(args.since)
        except ValueError as e:
            raise _fail(f"--since: {e}") from None
    asset = args.asset.strip("/")
    patterns = [glob_regex(p.strip("/")) for p in kset.parameters]

    def wanted(names: list[str]) -> list[str]:
        return [n for n in names if any(p.match(n) for p in patterns) and roster.contains(asset, asset_of(n))]

    tags = TagRegistry()
    if args.data is not None:
        batch = _read_file(args.data, tags)
        keep = set(wanted(tags.names))
        batch = batch.take(np.array([tags.name(int(g)) in keep for g in batch.tag], dtype=np.bool_))
        batch = batch.take(batch.ts < end)
    else:
        batch = asyncio.run(_trace_store(loaded.plant, wanted, tags, start, end))
    changes = with_on_shift(trace(kset.parameters, tags, batch, start=start), roster)
    write_trace(
        changes, args.format, sys.stdout, lambda ns: roster.local(ns).strftime("%Y-%m-%d %H:%M:%S %Z")
    )
    return 0


async def _trace_store(
    plant: PlantConfig, wanted: Any, tags: TagRegistry, start: int, end: int
) -> SampleBatch:
    from plantpulse.store import open_store

    store = open_store(plant.store)
    await store.open()
    try:
        names = wanted([t.name for t in await store.tags()])
        return await store.read_samples(names, start, end, tags, prior=True)
    finally:
        await store.close()
