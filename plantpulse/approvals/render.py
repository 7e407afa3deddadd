"""Changes and the change log as people read them: text lines, CSV, and printable HTML. Pure.

Times are shown in the site's time zone with their offset (``2026-12-01 10:00:00+08:00``);
the CSV and JSON carry ISO-8601 UTC as well, for tools. HTML is self-contained (no CDN, no
script), escaped everywhere, and prints on A4 as it is.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from plantpulse.approvals.changes import Change, History
from plantpulse.approvals.log import Finding, Record
from plantpulse.timefmt import iso_ms

__all__ = [
    "LogRow",
    "change_brief",
    "change_json",
    "change_lines",
    "log_csv",
    "log_html",
    "log_rows",
    "status_line",
]

Clock = Callable[[int], str]
"""ns -> site-local text."""


def status_line(h: History, c: Change, holders: Callable[[str], list[str]] | None = None) -> str:
    st = h.status(c)
    if st == "baseline":
        return "live (baseline: adopted from disk)"
    if st == "superseded":
        return "replaced by a later change"
    assert c.chain is not None
    em = " (emergency)" if c.emergency else ""
    if st == "rejected":
        return f"rejected by {c.chain.decided_by}: {c.chain.reason}"
    if st == "live" and c.emergency and c.chain.outcome == "pending":
        return f"live{em}; review waits for {c.chain.where()}"
    if st in ("live", "approved"):
        return f"{st}{em}: approved by " + ", ".join(s.by for s in c.chain.signatures)
    if st == "stale":
        return f"stale: {', '.join(h.stale(c))} changed since it was proposed (reject it and propose again)"
    who = ""
    if holders is not None:
        names = [n for n in holders(c.chain.role(c.chain.level)) if n != c.by]
        who = f": {', '.join(names)}" if names else ": nobody holds that role"
    return f"waits for {c.chain.where()}{who}"


def _figures(p: dict[str, Any]) -> str:
    return (
        f"{p['alarms']} alarms, {p['avg_per_interval']:.3g}/10 min, peak {p['peak_per_interval']},"
        f" flood {p['flood_share']:.0%}, {p['verdict']}"
    )


def change_lines(
    h: History, c: Change, clock: Clock, holders: Callable[[str], list[str]] | None = None
) -> list[str]:
    """A change for the terminal: who, why, what per rule, the predicted load, where it stands."""
    kind = "baseline" if c.kind == "baseline" else "EMERGENCY change" if c.emergency else "change"
    out = [f"{kind} #{c.id} by {c.by} at {clock(c.at)}: {status_line(h, c, holders)}"]
    if c.reason:
        out.append(f"  reason: {c.reason}")
    for v in c.files:
        base = f" (was #{v.base})" if v.base is not None else ""
        out.append(f"  {v.file}: sha256 {v.sha256[:12]}{base}")
    for d in c.diffs:
        for it in d.changed:
            out.append(f"    {it.summary()}")
        for k, o, n in d.settings:
            out.append(f"    (file) {k}: {o} -> {n}")
    p = c.prediction
    if p:
        out.append(
            f"  predicted over {clock(p['start'])} .. {clock(p['end'])} ({p.get('days', '?')} days,"
            f" {p['samples']} samples): {p['alerts']['old']} -> {p['alerts']['new']} alerts"
        )
        for r in p["rules"]:
            out.append(f"    rule {r['id']}: {r['old']} -> {r['new']} alerts")
        for pos in p["positions"]:
            out.append(f"    position {pos['position']}: {_figures(pos['old'])}  ->  {_figures(pos['new'])}")
    if c.chain is not None:
        for s in c.chain.signatures:
            note = f": {s.comment}" if s.comment else ""
            out.append(
                f"  level {s.level + 1} {c.chain.role(s.level)}: approved by {s.by} at {clock(s.at)}{note}"
            )
    return out


def change_brief(h: History, c: Change) -> dict[str, Any]:
    """A change in a list: who, when, which files, where it stands."""
    chain = c.chain
    return {
        "id": c.id,
        "kind": c.kind,
        "status": h.status(c),
        "by": c.by,
        "at": c.at,
        "reason": c.reason,
        "emergency": c.emergency,
        "files": [v.file for v in c.files],
        "waiting": chain.level if chain is not None and chain.outcome == "pending" else None,
    }


def change_json(h: History, c: Change) -> dict[str, Any]:
    """A change as JSON (``show --format json`` and the HTTP API)."""
    chain = c.chain
    signed = [] if chain is None else [
        {"level": s.level, "role": chain.role(s.level), "by": s.by, "at": s.at, "comment": s.comment}
        for s in chain.signatures
    ]  # fmt: skip
    return {
        **change_brief(h, c),
        "files": [f.to_json() for f in c.files],
        "diffs": [d.to_json() for d in c.diffs],
        "prediction": c.prediction,
        "levels": list(chain.levels) if chain else [],
        "approvals": signed,
        "decided_by": chain.decided_by if chain else None,
        "reason_rejected": chain.reason if chain and chain.outcome == "rejected" else None,
        "activated_at": c.activated_at,
        "applied": c.applied,
    }


@dataclass(frozen=True, slots=True)
class LogRow:
    seq: int
    at: int
    change: int
    action: str
    actor: str
    summary: str
    hash: str


def _summary(r: Record) -> str:
    d = r.data
    if r.action in ("baseline", "proposed"):
        files = ", ".join(f"{f.get('file')} ({str(f.get('sha256', ''))[:12]})" for f in d.get("files", []))
        what = []
        for f in d.get("diffs", []):
            for it in f.get("items", []):
                if it.get("status") != "unchanged":
                    what.append(f"{it['id']} {it['status']}")
        more = f"; {', '.join(what)}" if what else ""
        em = " EMERGENCY" if d.get("emergency") else ""
        reason = f"; reason: {d['reason']}" if d.get("reason") else ""
        return f"{files}{more}{em}{reason}"
    if r.action in ("approved", "rejected"):
        text = d.get("comment") or d.get("reason") or ""
        return f"level {int(d.get('level', 0)) + 1} ({d.get('role', '?')})" + (f": {text}" if text else "")
    if r.action == "activated":
        return ("EMERGENCY " if d.get("emergency") else "") + "live: " + ", ".join(d.get("files", []))
    if r.action == "notified":
        failed = f"; not reached: {', '.join(d['failed'])}" if d.get("failed") else ""
        to = ", ".join(d.get("to", [])) or "nobody"
        return f"{d.get('kind')} (level {int(d.get('level', 0)) + 1}) to {to}{failed}"
    if r.action == "applied":
        wm = iso_ms(int(d["watermark"])) if d.get("watermark") is not None else "-"
        return (
            f"{d.get('process')}: switched at watermark {wm};"
            f" kept {d.get('kept', 0)}, carried {d.get('carried', 0)}, fresh {d.get('fresh', 0)},"
            f" removed {d.get('removed', 0)}, alerts closed {d.get('closed', 0)}"
        )
    return r.detail


def log_rows(h: History, records: Iterable[Record], rule: str | None = None) -> list[LogRow]:
    """Log records as rows; with ``rule``, only the records of changes that touch it."""
    keep = None if rule is None else {c.id for c in h.changes.values() if c.touches(rule)}
    return [
        LogRow(r.seq, r.at, r.change, r.action, r.actor, _summary(r), r.hash)
        for r in records
        if keep is None or r.change in keep
    ]


def log_csv(rows: Sequence[LogRow], clock: Clock) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["seq", "at_utc", "at_local", "change", "action", "actor", "summary", "hash"])
    for r in rows:
        w.writerow([r.seq, iso_ms(r.at), clock(r.at), r.change, r.action, r.actor, r.summary, r.hash])
    return buf.getvalue()


_STYLE = (
    "body{font:13px/1.4 sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #999;padding:3px 5px;text-align:left;vertical-align:top}"
    "th{background:#eee}td.h{font:11px monospace;word-break:break-all}.bad{color:#b00;font-weight:bold}"
    ".ok{color:#070}@media print{body{margin:0}a{color:inherit;text-decoration:none}}"
)


def html_page(title: str, body: str, lang: str = "en") -> str:
    e = html.escape
    return (
        f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def log_html(
    rows: Sequence[LogRow], clock: Clock, *, title: str, findings: Sequence[Finding] | None, head: str
) -> str:
    """The change log as a printable page for audits, with the chain's verdict on top."""
    e = html.escape
    if findings is None:
        verdict = ""
    elif findings:
        verdict = (
            '<p class="bad">The chain is BROKEN:</p><ul>'
            + "".join(f'<li class="bad">{e(str(f))}</li>' for f in findings)
            + "</ul>"
        )
    else:
        verdict = f'<p class="ok">The chain verifies: {len(rows)} records, head {e(head)}.</p>'
    body = "".join(
        f"<tr><td>{r.seq}</td><td>{e(clock(r.at))}</td><td>#{r.change}</td><td>{e(r.action)}</td>"
        f"<td>{e(r.actor)}</td><td>{e(r.summary)}</td><td class=h>{e(r.hash)}</td></tr>"
        for r in rows
    )
    table = (
        "<table><tr><th>#</th><th>time</th><th>change</th><th>action</th><th>by</th><th>what</th>"
        f"<th>SHA-256</th></tr>{body}</table>"
    )
    return html_page(title, f"<h1>{e(title)}</h1>{verdict}{table}")
