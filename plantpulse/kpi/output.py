"""KPI results, alarm figures and parameter changes as table, CSV, JSON lines or HTML.

Machine formats (csv, jsonl) carry full precision and UTC times; the table and HTML are for
people: shares in %, durations like ``3h20m``, times in the site's zone.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from plantpulse.kpi.alarms import AlarmFigures
from plantpulse.kpi.model import Kpi
from plantpulse.kpi.results import COLUMNS, KpiResult
from plantpulse.kpi.trace import ParamChange
from plantpulse.timefmt import format_duration, iso_ms

__all__ = ["write_alarms", "write_results", "write_trace"]


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _dur(ns: float | None) -> str:
    return "-" if ns is None else format_duration(round(ns))


def shown(kpi: Kpi | None, value: float | None) -> str:
    """A value as people read it: shares in %, counts whole, else 4 significant digits."""
    if kpi is None or value is None:
        return _num(value)
    if kpi.fraction:
        return _pct(value)
    if kpi.kind == "alert_count":
        return f"{value:.0f}"
    return _num(value) + (f" {kpi.unit}" if kpi.unit else "")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _csv(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in columns])


def _html(title: str, head: list[str], rows: list[list[str]], classes: list[str], out: TextIO) -> None:
    e = html.escape
    out.write(
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>' + e(title) + "</title>\n<style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left}.missed{background:#fdd}.warning{background:#ffd}"
        ".partial{color:#888}</style></head><body>\n<h1>" + e(title) + "</h1>\n<table>\n<tr>"
    )
    out.write("".join(f"<th>{e(h)}</th>" for h in head) + "</tr>\n")
    for r, cls in zip(rows, classes, strict=True):
        attr = f' class="{cls}"' if cls else ""
        out.write(f"<tr{attr}>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>\n")
    out.write("</table>\n</body></html>\n")


def write_results(
    results: Sequence[KpiResult], fmt: str, out: TextIO, kpis: dict[str, Kpi], *, title: str = "KPI report"
) -> None:
    """``kpi report`` output; csv and jsonl carry the ``kpi_results`` columns."""
    if fmt == "csv":
        _csv([r.row() for r in results], COLUMNS, out)
        return
    if fmt == "jsonl":
        for r in results:
            out.write(json.dumps({**r.row(), "on_shift": r.on_shift}, ensure_ascii=False) + "\n")
        return
    head = [
        "WINDOW",
        "ASSET",
        "KPI",
        "VALUE",
        "TARGET",
        "STATUS",
        "COVERAGE",
        "CREW",
        "NUMERATOR",
        "DENOMINATOR",
    ]
    rows: list[list[str]] = []
    classes: list[str] = []
    for r in results:
        k = kpis.get(r.kpi)
        status = (r.status or "-").upper() if r.status == "missed" else (r.status or "-")
        cov = _pct(r.coverage) + (" partial" if r.partial else "")
        rows.append(
            [
                r.window.label,
                r.asset,
                r.kpi,
                shown(k, r.value),
                r.target or "-",
                status,
                cov,
                r.crew or "-",
                _num(r.numerator, 8),
                _num(r.denominator, 8),
            ]
        )
        classes.append(
            " ".join(c for c in (r.status if r.status != "ok" else "", "partial" if r.partial else "") if c)
        )
    if fmt == "html":
        _html(title, head, rows, classes, out)
    else:
        _table([head, *rows], out)


_ALARM_COLUMNS = (
    "position",
    "window",
    "start",
    "end",
    "crew",
    "operators",
    "alarms",
    "avg_per_interval",
    "peak_per_interval",
    "flood_share",
    "chattering",
    "standing",
    "top10_share",
    "priority",
    "ack_median_s",
    "ack_p90_s",
    "clear_median_s",
    "clear_p90_s",
    "late_ack_share",
    "unack_cleared",
    "shelved",
    "verdict",
    "targets_missed",
)


def _alarm_row(f: AlarmFigures) -> dict[str, Any]:
    def secs(ns: float | None) -> float | None:
        return None if ns is None else ns / 1e9

    return {
        "position": f.position,
        "window": f.window.label if f.window else "all",
        "start": iso_ms(f.start),
        "end": iso_ms(f.end),
        "crew": f.crew,
        "operators": ";".join(f.operators),
        "alarms": f.alarms,
        "avg_per_interval": f.avg_per_interval,
        "peak_per_interval": f.peak_per_interval,
        "flood_share": f.flood_share,
        "chattering": len(f.chattering),
        "standing": f.standing,
        "top10_share": f.top10_share,
        "priority": ";".join(f"{k}={v}" for k, v in f.priority.items()),
        "ack_median_s": secs(f.ack_median),
        "ack_p90_s": secs(f.ack_p90),
        "clear_median_s": secs(f.clear_median),
        "clear_p90_s": secs(f.clear_p90),
        "late_ack_share": f.late_ack_share,
        "unack_cleared": f.unack_cleared,
        "shelved": f.shelved,
        "verdict": f.verdict,
        "targets_missed": ";".join(k for k, ok in f.targets.items() if not ok),
    }


def write_alarms(figures: Sequence[AlarmFigures], fmt: str, out: TextIO) -> None:
    """``kpi alarms`` output: one line per position for the whole range, then per shift."""
    if fmt == "csv":
        _csv([_alarm_row(f) for f in figures], _ALARM_COLUMNS, out)
        return
    if fmt == "jsonl":
        for f in figures:
            row = _alarm_row(f)
            row["chattering"] = [list(x) for x in f.chattering]
            row["top10"] = [list(x) for x in f.top10]
            row["priority"] = f.priority
            row["targets"] = f.targets
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    head = [
        "POSITION",
        "WINDOW",
        "CREW",
        "ALARMS",
        "AVG/10MIN",
        "PEAK",
        "FLOOD",
        "CHATTER",
        "STANDING",
        "TOP10",
        "ACK MEDIAN",
        "ACK P90",
        "ACK>48H",
        "UNACK-CLEARED",
        "VERDICT",
        "TARGETS MISSED",
    ]
    rows = [head]
    for f in figures:
        missed = [k for k, ok in f.targets.items() if not ok]
        rows.append(
            [
                f.position,
                f.window.label if f.window else "all",
                f.crew or "-",
                str(f.alarms),
                f"{f.avg_per_interval:.2f}",
                str(f.peak_per_interval),
                _pct(f.flood_share),
                str(len(f.chattering)),
                str(f.standing),
                _pct(f.top10_share),
                _dur(f.ack_median),
                _dur(f.ack_p90),
                _pct(f.late_ack_share),
                str(f.unack_cleared),
                f.verdict,
                ",".join(missed) or "-",
            ]
        )
    _table(rows, out)


def write_trace(changes: Sequence[ParamChange], fmt: str, out: TextIO, local: Callable[[int], str]) -> None:
    """``trace`` output: one change per line, oldest first, with who was on shift."""
    if fmt == "jsonl":
        for c in changes:
            out.write(json.dumps(c.row(), ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        flat = [
            {**c.row(), "on_shift": "; ".join(f"{k}={','.join(v)}" for k, v in c.on_shift.items())}
            for c in changes
        ]
        _csv(flat, ("at", "tag", "asset", "old", "new", "on_shift"), out)
        return
    rows = [["TIME", "TAG", "OLD", "NEW", "ON SHIFT"]]
    for c in changes:
        who = "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in c.on_shift.items()) or "-"
        rows.append([local(c.at), c.tag, _num(c.old, 8), _num(c.new, 8), who])
    _table(rows, out)
