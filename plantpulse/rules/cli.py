"""``plantpulse rules check | test | backtest`` (SPEC §4 "Command line"); the approval commands
(``propose | approve | reject | show | log``) live in ``plantpulse.approvals.cli``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from plantpulse.errors import ConfigError, Problem
from plantpulse.rules.backtest import AlertRecord, backtest
from plantpulse.rules.loader import load_rule_files
from plantpulse.samplefile import SampleFileError, SampleReader
from plantpulse.samples import TagRegistry
from plantpulse.timefmt import iso_ms

PROGRESS_BYTES = 64 << 20  # files at least this large show progress even when stderr is not a TTY


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``rules`` and its subcommands to ``plantpulse``."""
    p = sub.add_parser("rules", help="check, unit-test and backtest rule files; propose and approve changes")
    rsub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)

    c = rsub.add_parser("check", help="validate rule files (exit 1 with FILE:LINE:COL: message per problem)")
    c.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories of *.yaml")
    c.set_defaults(func=cmd_check)

    t = rsub.add_parser("test", help="run rule unit tests (input series and expected alerts)")
    t.add_argument("paths", nargs="+", metavar="PATH", help="test files")
    t.set_defaults(func=cmd_test)

    b = rsub.add_parser("backtest", help="run rules over recorded samples (CSV or Parquet)")
    b.add_argument("--rules", nargs="+", required=True, metavar="PATH", help="rule files or directories")
    b.add_argument(
        "--data", required=True, metavar="FILE", help="samples: CSV ts,tag,value[,quality] or Parquet"
    )
    b.add_argument(
        "--format", choices=("jsonl", "table"), default="jsonl", help="output format (default jsonl)"
    )
    b.set_defaults(func=cmd_backtest)

    from plantpulse.approvals.cli import register as register_approvals

    register_approvals(rsub)  # propose | approve | reject | show | log (docs/approvals.md)


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def cmd_check(args: argparse.Namespace) -> int:
    files = _expand(args.paths)
    rules = load_rule_files(files)  # ConfigError: cli.main prints every problem, exit 1
    print(f"ok: {len(rules)} rules in {len(files)} file{'s' if len(files) != 1 else ''}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from plantpulse.rules.ruletest import run_file

    failed = 0
    for path in args.paths:
        print(f"{path}:")
        if not run_file(path, sys.stdout):
            failed += 1
    total = len(args.paths)
    print(
        f"{total - failed}/{total} test files passed"
        if failed
        else f"ok: {total} test file{'s' if total != 1 else ''} passed"
    )
    return 1 if failed else 0


def cmd_backtest(args: argparse.Namespace) -> int:
    rules = load_rule_files(_expand(args.rules))
    data = Path(args.data)
    if not data.is_file():
        raise ConfigError([Problem(str(data), 1, 1, "", "no such data file")])
    tags = TagRegistry()
    reader = SampleReader(data, tags)
    progress = _Progress(reader, sys.stderr) if sys.stderr.isatty() or reader.size >= PROGRESS_BYTES else None
    try:
        result = backtest(rules, reader, tags, on_batch=progress.update if progress else None)
    except SampleFileError as e:
        raise ConfigError([Problem(str(data), 1, 1, "", str(e).removeprefix(f"{data}: "))]) from None
    if progress:
        progress.done()
    out = sys.stdout
    if args.format == "jsonl":
        for a in result.alerts:
            out.write(json.dumps(a.to_json(), ensure_ascii=False) + "\n")
    else:
        _table(result.alerts, out)
    st = result.stats
    hours = result.hours
    rate = f"{len(result.alerts) / hours:.2f} alerts/hour" if hours > 0 else "n/a alerts/hour"
    err = sys.stderr
    print(
        f"{len(result.alerts)} alerts from {st.samples} samples"
        f" ({st.bad_samples} bad, {st.late_dropped} late dropped)"
        f" over {hours:.2f} h: {rate}",
        file=err,
    )
    for rule, n in result.per_rule.items():
        per_h = f", {n / hours:.2f}/h" if hours > 0 else ""
        print(f"  {rule}: {n} alerts{per_h}", file=err)
    return 0


def _table(alerts: list[AlertRecord], out: TextIO) -> None:
    rows = [("RAISED_AT", "CLEARED_AT", "RULE", "TAG", "SEVERITY", "VALUE", "MESSAGE")]
    for a in alerts:
        cleared = "-" if a.cleared_at is None else iso_ms(a.cleared_at)
        rows.append((iso_ms(a.raised_at), cleared, a.rule, a.tag, a.severity, f"{a.value:g}", a.message))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6] + "\n")


class _Progress:
    """One carriage-return line on stderr, redrawn at most once per percent."""

    def __init__(self, reader: SampleReader, stream: TextIO) -> None:
        self.reader, self.stream = reader, stream
        self.samples = 0
        self.shown = -1

    def update(self, n: int) -> None:
        self.samples += n
        pct = int(self.reader.progress * 100)
        if pct != self.shown:
            self.shown = pct
            name = os.path.basename(self.reader.path)
            self.stream.write(f"\rbacktest {name}: {pct:3d}% {self.samples:,} samples")
            self.stream.flush()

    def done(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
