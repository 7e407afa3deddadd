"""``plantpulse rules propose | approve | reject | show | log`` (SPEC §8, docs/approvals.md).

Every command takes ``-c plant.yaml`` (its team, its approval chains, its store). A request the
approval rules refuse (wrong role, self-approval, out of order, a stale change) prints one line
``plantpulse: ...`` and exits 1, as does ``log --verify`` when the chain is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from plantpulse.approvals.changelog import ChangeLog, open_change_log
from plantpulse.approvals.changes import History
from plantpulse.approvals.holders import holders
from plantpulse.approvals.log import Record, verify
from plantpulse.approvals.render import change_json, change_lines, log_csv, log_html, log_rows
from plantpulse.approvals.service import Plant, Refused, adopt, decide, history, propose, read_witness
from plantpulse.config import load_config
from plantpulse.errors import StoreError

__all__ = ["register"]

T = TypeVar("T")


def register(rsub: argparse._SubParsersAction[Any]) -> None:
    """Add the approval subcommands to ``plantpulse rules``."""
    p = rsub.add_parser("propose", help="propose rule or KPI files for approval (with their predicted load)")
    p.add_argument("files", nargs="+", metavar="FILE", help="rule or KPI files of the plant, as edited")
    _config(p)
    p.add_argument("--by", required=True, help="who proposes (a person of team.people)")
    p.add_argument("--reason", required=True, help="why")
    p.add_argument(
        "--days",
        type=int,
        default=None,
        help="backtest over this many days (default: approvals.backtest_days, 7)",
    )
    p.add_argument(
        "--emergency", action="store_true", help="go live at once (approvals.emergency roles); reviewed after"
    )
    p.set_defaults(func=cmd_propose)

    a = rsub.add_parser("approve", help="approve the waiting level of a change")
    a.add_argument("change", type=_change, metavar="CHANGE", help="change number, e.g. 7")
    _config(a)
    a.add_argument("--by", required=True, help="who approves")
    a.add_argument("--comment", default=None)
    a.set_defaults(func=cmd_approve)

    r = rsub.add_parser("reject", help="reject a change (its proposer may withdraw it)")
    r.add_argument("change", type=_change, metavar="CHANGE", help="change number, e.g. 7")
    _config(r)
    r.add_argument("--by", required=True, help="who rejects")
    r.add_argument("--reason", required=True)
    r.set_defaults(func=cmd_reject)

    s = rsub.add_parser("show", help="a change: files, per-rule diff, predicted load, approvals")
    s.add_argument("change", type=_change, metavar="CHANGE", help="change number, e.g. 7")
    _config(s)
    s.add_argument("--diff", action="store_true", help="also print the unified diff of each file")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_show)

    lg = rsub.add_parser("log", help="the change log; --verify checks its hash chain")
    _config(lg)
    lg.add_argument("--rule", metavar="ID", help="only changes that touch this rule")
    lg.add_argument("--verify", action="store_true", help="exit 1 and name every edited or deleted record")
    lg.add_argument("--format", choices=("table", "csv", "html", "jsonl"), default="table")
    lg.set_defaults(func=cmd_log)


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")


def _change(text: str) -> int:
    try:
        n = int(text.strip().removeprefix("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a change is a number such as 7 (or #7)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a change number is 1 or more")
    return n


def source() -> str:
    """Where a command-line request came from, for the log: ``cli USER@HOST``."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"cli {user}@{socket.gethostname()}"


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"plantpulse: {msg}")


def _run(plant: Plant, work: Callable[[ChangeLog], Awaitable[T]]) -> T:
    async def main() -> T:
        log = open_change_log(plant.loaded.plant.store)
        await log.open()
        try:
            await adopt(plant, log, now=time.time_ns())  # the first touch records the files on disk
            return await work(log)
        finally:
            await log.close()

    try:
        return asyncio.run(main())
    except Refused as e:
        raise _fail(str(e)) from None
    except StoreError as e:
        raise _fail(str(e)) from None


def _plant(args: argparse.Namespace) -> Plant:
    try:
        return Plant.of(load_config(args.config))
    except Refused as e:
        raise _fail(str(e)) from None


def _clock(plant: Plant) -> Callable[[int], str]:
    from plantpulse.people.roster import Roster

    roster = Roster(plant.team, plant.loaded.plant.site.timezone)
    return lambda ns: roster.local(ns).isoformat(sep=" ", timespec="seconds")


def _print_change(plant: Plant, h: History, cid: int, diff: bool = False) -> None:
    c = h.changes[cid]
    for line in change_lines(h, c, _clock(plant), lambda role: holders(plant.team, role)):
        print(line)
    if diff:
        for d in c.diffs:
            for line in d.text:
                print(line)


def cmd_propose(args: argparse.Namespace) -> int:
    plant = _plant(args)
    paths = [Path(f) for f in args.files]
    for p in paths:
        if not p.is_file():
            raise _fail(f"{p}: no such file")

    async def work(log: ChangeLog) -> tuple[History, int]:
        from plantpulse.store import open_store

        store = open_store(plant.loaded.plant.store)
        await store.open()
        try:
            c = await propose(
                plant, log, store, paths, by=args.by, reason=args.reason, now=time.time_ns(),
                days=args.days, emergency=args.emergency, source=source(),
            )  # fmt: skip
        finally:
            await store.close()
        return (await history(log))[0], c.id

    h, cid = _run(plant, work)
    _print_change(plant, h, cid)
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    plant = _plant(args)
    text = args.comment if approve else args.reason

    async def work(log: ChangeLog) -> History:
        await decide(
            plant,
            log,
            args.change,
            by=args.by,
            approve=approve,
            text=text,
            now=time.time_ns(),
            source=source(),
        )
        return (await history(log))[0]

    h = _run(plant, work)
    c = h.changes[args.change]
    assert c.chain is not None
    verb = "approved" if approve else "rejected"
    level = c.chain.level - 1 if approve else c.chain.level
    print(f"change #{c.id}: {verb} by {args.by} ({c.chain.where(level)})")
    _print_change(plant, h, c.id)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, False)


def cmd_show(args: argparse.Namespace) -> int:
    plant = _plant(args)
    h, _ = _run(plant, history)
    c = h.changes.get(args.change)
    if c is None:
        raise _fail(f"no change #{args.change}")
    if args.format == "json":
        print(json.dumps(change_json(h, c), ensure_ascii=False, indent=2))
    else:
        _print_change(plant, h, c.id, diff=args.diff)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    plant = _plant(args)
    h, records = _run(plant, history)
    findings = verify(records, read_witness(plant.witness_file)) if args.verify else None
    rows = log_rows(h, records, args.rule)
    clock = _clock(plant)
    out = sys.stdout
    if args.format == "csv":
        out.write(log_csv(rows, clock))
    elif args.format == "html":
        head = f"{records[-1].seq}:{records[-1].hash}" if records else "empty"
        title = f"{plant.loaded.plant.site.name}: change log"
        out.write(log_html(rows, clock, title=title, findings=findings, head=head) + "\n")
    elif args.format == "jsonl":
        shown = {x.seq for x in rows}
        for r in records:
            if r.seq in shown:
                out.write(json.dumps(_record_json(r), ensure_ascii=False) + "\n")
    else:
        for row in rows:
            when = clock(row.at)
            out.write(f"{row.seq:>5}  {when}  #{row.change:<4} {row.action:<9} {row.actor}: {row.summary}\n")
    if findings is None:
        return 0
    head = f"record {records[-1].seq}, sha256 {records[-1].hash}" if records else "empty"
    if findings:
        for f in findings:
            print(f"plantpulse: change log: {f}", file=sys.stderr)
        print(
            f"plantpulse: change log BROKEN: {len(findings)} problem(s) in {len(records)} records",
            file=sys.stderr,
        )
        return 1
    print(f"change log verified: {len(records)} records, head {head}", file=sys.stderr)
    return 0


def _record_json(r: Record) -> dict[str, Any]:
    return {"seq": r.seq, "change": r.change, "at": r.at, "action": r.action, "actor": r.actor,
            "detail": r.data, "prev": r.prev, "hash": r.hash}  # fmt: skip
