"""Rule unit tests, in the spirit of ``promtool test rules``.

A test file names rule files (relative to itself) and test cases; each case gives input
samples (inline CSV and/or compact series) and the complete list of alerts it expects. The
engine runs over the input, the end watermark defaults to the last sample, and any
difference is reported as a readable diff. See docs/rules.md for the format.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from plantpulse import yamlsrc
from plantpulse.errors import ConfigError
from plantpulse.rules.backtest import AlertRecord, backtest
from plantpulse.rules.loader import load_rule_files
from plantpulse.samplefile import SampleFileError, SampleReader
from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry
from plantpulse.schema import Duration, StrictModel
from plantpulse.timefmt import format_duration, from_datetime, iso_ms, parse_duration, parse_ts

When = str | float | datetime

_TOKEN = re.compile(
    r"^(?P<a>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)(?:(?P<op>[-+])(?P<b>\d+(?:\.\d*)?))?x(?P<n>\d+)$"
)


class SeriesSpec(StrictModel):
    tag: str
    values: str = Field(description="compact notation: '1 2 _ bad 5+1x3 7x2'")
    interval: Duration | None = None


class InputSpec(StrictModel):
    csv: str | None = None
    series: list[SeriesSpec] = Field(default_factory=list)


class ExpectSpec(StrictModel):
    rule: str
    tag: str
    raised_at: When
    cleared_at: When | None = None
    value: float | None = None
    message: str | None = None


class CaseSpec(StrictModel):
    name: str
    start: When = 0
    interval: Duration = 1_000_000_000
    input: InputSpec
    end: When | None = None
    expect: list[ExpectSpec] = Field(default_factory=list)


class TestFileSpec(StrictModel):
    rule_files: list[str] = Field(min_length=1)
    tests: list[CaseSpec] = Field(min_length=1)


@dataclass
class CaseResult:
    name: str
    ok: bool
    diff: list[str]


def expand(values: str, start: int, interval: int) -> list[tuple[int, float, Quality]]:
    """Compact series: ``v`` a sample, ``_`` no sample, ``bad`` a bad sample, ``a+bxn`` the
    n+1 samples a, a+b, ..., a+n*b (``axn`` repeats a, ``_xn`` skips n steps)."""
    out: list[tuple[int, float, Quality]] = []
    step = 0
    for tok in values.split():
        if tok == "_":
            step += 1
            continue
        if tok.startswith("_x"):
            step += int(tok[2:])
            continue
        if tok.lower() in ("bad", "nan"):
            out.append((start + step * interval, math.nan, Quality.BAD))
            step += 1
            continue
        m = _TOKEN.match(tok)
        if m:
            a, n = float(m["a"]), int(m["n"])
            b = float(m["b"] or 0) * (-1 if m["op"] == "-" else 1)
            for i in range(n + 1):
                out.append((start + step * interval, a + i * b, Quality.GOOD))
                step += 1
            continue
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"bad series token {tok!r}: write 1.5, _, bad, 1+2x3 or 5x4") from None
        out.append((start + step * interval, v, Quality.GOOD))
        step += 1
    return out


def _time(spec: When, start: int) -> int:
    """An instant: ISO-8601, or an offset from the case start like ``3s`` / ``1m30s``."""
    if isinstance(spec, datetime):
        return from_datetime(spec)
    if isinstance(spec, str) and re.match(r"^\d", spec) and not re.match(r"^\d{4}-", spec):
        return start + parse_duration(spec)
    if isinstance(spec, int | float):
        return start + round(spec * 1e9)
    return parse_ts(spec)


def run_case(case: CaseSpec, rules: Any) -> CaseResult:
    start = _time(case.start, 0) if case.start != 0 else 0
    tags = TagRegistry()
    samples: list[Sample] = []
    for s in case.input.series:
        for ts, v, q in expand(s.values, start, s.interval or case.interval):
            samples.append(Sample(ts, s.tag, v, q))
    batches = [SampleBatch.from_samples(tags, samples)]
    if case.input.csv:
        batches += _csv_batches(case.input.csv, tags)
    end = None if case.end is None else _time(case.end, start)
    result = backtest(rules, [SampleBatch.concat(tags, batches)], tags, end=end)
    got = [_fmt_got(a, start) for a in result.alerts]
    want = []
    by_key = {(a.rule, a.tag, a.raised_at): a for a in result.alerts}
    for e in case.expect:
        raised = _time(e.raised_at, start)
        cleared = None if e.cleared_at is None else _time(e.cleared_at, start)
        actual = by_key.get((e.rule, e.tag, raised))
        value = e.value if e.value is not None else (actual.value if actual else None)
        message = e.message if e.message is not None else (actual.message if actual else None)
        want.append(_fmt(e.rule, e.tag, (raised, cleared), value, message, start=start))
    got.sort()
    want.sort()
    diff = [f"  - {w}" for w in want if w not in got] + [f"  + {g}" for g in got if g not in want]
    return CaseResult(case.name, not diff, diff)


def _csv_batches(text: str, tags: TagRegistry) -> list[SampleBatch]:
    """Inline CSV goes through the same reader as files, so both accept the same dialect."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "input.csv"
        p.write_text(text.strip() + "\n", encoding="utf-8")
        return list(SampleReader(p, tags))


def _fmt_got(a: AlertRecord, start: int) -> str:
    return _fmt(a.rule, a.tag, (a.raised_at, a.cleared_at), a.value, a.message, start=start)


def _fmt(
    rule: str, tag: str, span: tuple[int, int | None], value: float | None, msg: str | None, *, start: int
) -> str:
    raised, cleared = span

    def when(t: int | None) -> str:
        if t is None:
            return "active"
        return f"+{format_duration(t - start)}" if start == 0 and t >= 0 else iso_ms(t)

    v = "?" if value is None else f"{value:g}"
    return f"{rule} {tag} raised {when(raised)} cleared {when(cleared)} value {v} message {msg!r}"


def run_file(path: str | Path, out: io.TextIOBase | Any) -> bool:
    """Run every case of one test file, printing results to ``out``; True when all pass."""
    doc = yamlsrc.load(path)
    spec = yamlsrc.validate(TestFileSpec, doc)
    base = Path(path).resolve().parent
    rules = load_rule_files([base / f for f in spec.rule_files])
    ok = True
    for i, case in enumerate(spec.tests):
        try:
            res = run_case(case, rules)
        except (ValueError, SampleFileError) as e:
            raise ConfigError([doc.problem(("tests", i, "input"), str(e), f"test {case.name}")]) from None
        if res.ok:
            print(f"  ok    {case.name}", file=out)
        else:
            ok = False
            print(f"  FAIL  {case.name}  (- expected, + got)", file=out)
            for line in res.diff:
                print(line, file=out)
    return ok


__all__ = ["CaseResult", "TestFileSpec", "ValidationError", "expand", "run_file"]
