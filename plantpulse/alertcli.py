"""``plantpulse alerts list | show | export``: the alert history from the command line.

    plantpulse alerts list   [-c plant.yaml | --store URL] [--since 24h] [--until T] [--state S]
                             [--rule ID] [--asset GLOB] [--limit 50] [--format table|jsonl|csv]
    plantpulse alerts show   ALERT_ID [-c plant.yaml | --store URL] [--format table|jsonl]
    plantpulse alerts export [the filters of list] [--limit N] [--format csv|jsonl]

The filters, the states and the records are those of ``GET /api/alerts`` (``alertquery``), so
a script may use either. ``list`` shows the newest ``--limit`` alerts; ``export`` writes every
alert in range as it reads them from the store a page at a time, so memory stays one page
whatever the range. Bad input is one line on stderr and exit 1; nothing is written to a store
that does not exist (a mistyped SQLite path is an error, not a new empty database).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from plantpulse.alertquery import (
    CSV_FIELDS,
    GROUPS,
    STATES,
    AlertQuery,
    QueryError,
    alert_record,
    journal_record,
    parse_query,
    select,
)
from plantpulse.alerts import Alert
from plantpulse.discover.table import columns
from plantpulse.errors import StoreError
from plantpulse.store import Store, open_store

__all__ = ["register"]

DEFAULT_STORE = "sqlite:///plantpulse.db"


class _Refused(Exception):
    """Bad input or an unusable store: printed as one line, exit 1."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``alerts list | show | export`` to ``plantpulse``."""
    p = sub.add_parser("alerts", help="list, show and export alerts from the store")
    asub = p.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)

    ls = asub.add_parser("list", help="the newest alerts that match, as a table, JSON lines or CSV")
    _store_options(ls)
    _filters(ls)
    ls.add_argument("--limit", default="50", help="at most this many, newest first (default %(default)s)")
    ls.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    ls.set_defaults(func=_list)

    show = asub.add_parser("show", help="one alert with its journal (raised, notified, acknowledged, ...)")
    show.add_argument("alert_id", metavar="ALERT_ID")
    _store_options(show)
    show.add_argument("--format", choices=["table", "jsonl"], default="table")
    show.set_defaults(func=_show)

    ex = asub.add_parser("export", help="every alert that matches, streamed as CSV or JSON lines")
    _store_options(ex)
    _filters(ex)
    ex.add_argument("--limit", default=None, help="at most this many, newest first (default: all)")
    ex.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    ex.set_defaults(func=_export)


def _store_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="plant.yaml (its store is read)")
    where.add_argument("--store", metavar="URL", help=f"store URL (default: {DEFAULT_STORE})")


def _filters(p: argparse.ArgumentParser) -> None:
    when = "ISO-8601 (2026-12-01, 2026-12-01T08:00:00Z, ...+08:00) or a duration before now (24h, 7d)"
    p.add_argument("--since", help=f"raised at or after this: {when}")
    p.add_argument("--until", help=f"raised before this: {when}")
    p.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help=f"repeatable or comma-separated, any of them: {', '.join((*GROUPS, *STATES))}",
    )
    p.add_argument("--rule", help="rule id")
    p.add_argument(
        "--asset", metavar="GLOB", help="an asset and everything below it, or a glob: line1/weld0*"
    )


# -- the commands ------------------------------------------------------------------------------


def _query(args: argparse.Namespace, now: int, default_limit: int | None) -> AlertQuery:
    items = [
        (k, v) for k in ("since", "until", "rule", "asset", "limit") if (v := getattr(args, k)) is not None
    ]
    items += [("state", s) for s in args.state]
    return parse_query(items, now, max_limit=None, default_limit=default_limit, prefix="--")


Work = Callable[[argparse.Namespace, Store, AlertQuery, int], Awaitable[int]]


def _list(args: argparse.Namespace) -> int:
    return _run(args, _list_async, default_limit=50)


def _export(args: argparse.Namespace) -> int:
    return _run(args, _export_async)


def _show(args: argparse.Namespace) -> int:
    return _run(args, _show_async)


def _run(args: argparse.Namespace, work: Work, *, default_limit: int | None = None) -> int:
    """Options first (refused before any store is opened), then ``work`` on the open store."""
    now = time.time_ns()

    async def main(query: AlertQuery) -> int:
        store = _store(args)
        try:
            await store.open()
        except StoreError as e:
            raise _Refused(str(e)) from None
        try:
            return await work(args, store, query, now)
        finally:
            await store.close()

    try:
        query = _query(args, now, default_limit) if hasattr(args, "state") else AlertQuery()
        return asyncio.run(main(query))
    except (QueryError, _Refused, StoreError) as e:
        print(f"plantpulse alerts {args.alerts_command}: {e}", file=sys.stderr)
        return 1


def _store(args: argparse.Namespace) -> Store:
    if args.config is not None:
        from plantpulse.config import load_config

        url = load_config(args.config).plant.store.url
    else:
        url = args.store or DEFAULT_STORE
    if url.partition(":")[0].lower() == "sqlite":
        from plantpulse.store.sqlite import parse_sqlite_url

        path = parse_sqlite_url(url)
        if path != ":memory:" and not Path(path).is_file():
            raise _Refused(f"no store at {path}: name one with --store URL or -c plant.yaml")
    try:
        return open_store(url)
    except ValueError as e:
        raise _Refused(str(e)) from None


async def _list_async(args: argparse.Namespace, store: Store, query: AlertQuery, now: int) -> int:
    limit = query.limit
    assert limit is not None
    found = [a async for a in select(store, replace(query, limit=limit + 1), now)]
    alerts, cut = found[:limit], len(found) > limit
    out = sys.stdout
    if args.format == "table":
        _table(alerts, now, out)
        if not alerts:
            print("no alerts match", file=sys.stderr)
    else:
        await _write(args.format, _each(alerts), now, out)
    if cut:
        print(f"the newest {limit} shown; --limit N or alerts export for more", file=sys.stderr)
    return 0


async def _export_async(args: argparse.Namespace, store: Store, query: AlertQuery, now: int) -> int:
    n = await _write(args.format, select(store, query, now), now, sys.stdout)
    print(f"{n} alerts exported", file=sys.stderr)
    return 0


async def _show_async(args: argparse.Namespace, store: Store, _: AlertQuery, now: int) -> int:
    alert = await store.alert(args.alert_id)
    if alert is None:
        raise _Refused(f"no alert {args.alert_id}")
    journal = [journal_record(e) for e in await store.journal(alert.id)]
    record = alert_record(alert, now)
    if args.format == "jsonl":
        print(json.dumps({**record, "journal": journal}, ensure_ascii=False))
        return 0
    rows = [(f"{k}:", _text(record[k])) for k in CSV_FIELDS if k != "on_shift"]
    rows.append(
        ("on_shift:", "; ".join(f"{role}: {', '.join(names)}" for role, names in alert.on_shift.items()))
    )
    print("\n".join(columns(rows)))
    print("journal:")
    lines = [(e["at"], e["action"], e["actor"], _detail(e["detail"])) for e in journal]
    print("\n".join("  " + line for line in columns(lines)) if lines else "  (empty)")
    return 0


# -- writing ------------------------------------------------------------------------------------


async def _each(alerts: list[Alert]) -> AsyncIterator[Alert]:
    for a in alerts:
        yield a


async def _write(fmt: str, alerts: AsyncIterator[Alert], now: int, out: TextIO) -> int:
    """Alerts as JSON lines or CSV (header first), one line each as they come; how many."""
    n = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_FIELDS)
    async for alert in alerts:
        record = alert_record(alert, now)
        if writer is None:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer.writerow([_cell(record[k]) for k in CSV_FIELDS])
        n += 1
    return n


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _table(alerts: list[Alert], now: int, out: TextIO) -> None:
    if not alerts:
        return
    rows = [("ID", "RAISED (UTC)", "STATE", "SEVERITY", "RULE", "TAG", "VALUE", "MESSAGE")]
    for a in alerts:
        r = alert_record(a, now)
        rows.append(
            (a.id, r["raised_at"], r["state"], a.severity, a.rule, a.tag, _text(r["value"]), a.message)
        )
    out.write("\n".join(columns(rows)) + "\n")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _detail(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                    for k, v in detail.items() if v is not None and not k.endswith("_ns"))  # fmt: skip
