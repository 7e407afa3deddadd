"""What a push says, in Chinese or English: rule message, asset, value, severity, how long,
a short trend, who is on shift and the acknowledge link (SPEC §6).

A phone lock screen shows the title and two lines, so the title carries severity, kind, rule
and asset, and the body starts with the rule's own message. Templates are ``str.format`` over
text fields (TEMPLATE_FIELDS); a line whose fields are all empty is left out, so one template
serves a raise with a trend and a link as well as a clear without either. Pure: no clock (the
caller passes ``now``), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from plantpulse.alerts import Trend
from plantpulse.notifier.escalation import SendKind
from plantpulse.people.schema import TEMPLATE_FIELDS, Language, Templates, template_fields
from plantpulse.timefmt import NS_PER_S, format_duration

SEVERITY_LABELS: dict[Language, dict[str, str]] = {
    "en": {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "CRITICAL"},
    "zh": {"low": "低", "medium": "中", "high": "高", "critical": "紧急"},
}
KIND_LABELS: dict[Language, dict[str, str]] = {
    "en": {"raise": "ALERT", "escalate": "ESCALATED", "repeat": "REMINDER", "clear": "CLEARED"},
    "zh": {"raise": "报警", "escalate": "升级", "repeat": "提醒", "clear": "已恢复"},
}
ROLE_LABELS: dict[Language, dict[str, str]] = {
    "en": {},
    "zh": {
        "operator": "操作工",
        "team_lead": "班组长",
        "quality_engineer": "质量工程师",
        "equipment_engineer": "设备工程师",
        "maintenance": "维修",
        "workshop_director": "车间主任",
    },
}

DEFAULTS: dict[Language, Templates] = {
    "en": Templates(
        title="[{severity}] {kind}: {rule} @ {asset}",
        body=(
            "{message}\n"
            "Asset: {asset}  Tag: {tag}\n"
            "Value: {value}  Active for: {active_for}\n"
            "Raised: {raised_at}\n"
            "Cleared: {cleared_at}\n"
            "Trend: {trend}\n"
            "On shift: {on_shift}\n"
            "Acknowledge: {ack_link}\n"
            "Alert {alert_id}"
        ),
    ),
    "zh": Templates(
        title="【{severity}】{kind}:{rule} @ {asset}",
        body=(
            "{message}\n"
            "设备:{asset}  测点:{tag}\n"
            "数值:{value}  已持续:{active_for}\n"
            "报警时间:{raised_at}\n"
            "恢复时间:{cleared_at}\n"
            "趋势:{trend}\n"
            "当班:{on_shift}\n"
            "确认:{ack_link}\n"
            "报警编号 {alert_id}"
        ),
    ),
}


def trend(values: Sequence[float], window: int) -> Trend | None:
    """Min/max/first/last of the finite values (NaN is bad data); None when there are none."""
    good = [float(v) for v in values if math.isfinite(v)]
    if not good:
        return None
    return Trend(good[0], good[-1], min(good), max(good), len(good), window)


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """Everything a message may show about one alert; times are UTC ns."""

    alert_id: str
    rule: str
    tag: str
    asset: str
    severity: str
    message: str
    value: float
    raised_at: int
    now: int  # when the message is rendered (for "active for")
    kind: SendKind = "raise"
    step: int = 0
    cleared_at: int | None = None
    on_shift: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ack_link: str | None = None
    trend: Trend | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str


def _num(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return f"{x:.6g}"  # also "inf" / "-inf": a reading at the end of its range says so


def _when(ns: int, zone: str) -> str:
    dt = datetime.fromtimestamp(ns // NS_PER_S, UTC).astimezone(ZoneInfo(zone))
    return dt.strftime("%Y-%m-%d %H:%M:%S %Z")


def trend_text(t: Trend | None, lang: Language) -> str:
    if t is None:
        return ""
    span = t.max - t.min
    delta = t.last - t.first
    if span == 0 or abs(delta) < 0.1 * span:
        direction = {"en": "steady", "zh": "平稳"}[lang]
    elif delta > 0:
        direction = {"en": "rising ↑", "zh": "上升 ↑"}[lang]
    else:
        direction = {"en": "falling ↓", "zh": "下降 ↓"}[lang]
    w = format_duration(t.window)
    if lang == "zh":
        return f"近 {w} 最小 {_num(t.min)},最大 {_num(t.max)},最新 {_num(t.last)}({direction})"
    return f"last {w}: min {_num(t.min)}, max {_num(t.max)}, last {_num(t.last)} ({direction})"


def on_shift_text(on_shift: Mapping[str, Sequence[str]], lang: Language) -> str:
    labels = ROLE_LABELS[lang]
    nobody = {"en": "nobody", "zh": "无人"}[lang]
    sep, role_sep = ("、", ";") if lang == "zh" else (", ", "; ")
    colon = ":" if lang == "zh" else ": "
    return role_sep.join(
        f"{labels.get(r, r)}{colon}{sep.join(names) or nobody}" for r, names in on_shift.items()
    )


def fields(m: AlertMessage, lang: Language) -> dict[str, str]:
    """The text of every template field for ``m`` in ``lang``."""
    end = m.cleared_at if m.cleared_at is not None else m.now
    return {
        "kind": KIND_LABELS[lang][m.kind],
        "severity": SEVERITY_LABELS[lang].get(m.severity, m.severity.upper()),
        "rule": m.rule,
        "asset": m.asset,
        "tag": m.tag,
        "message": m.message,
        "value": _num(m.value),
        "raised_at": _when(m.raised_at, m.timezone),
        "cleared_at": _when(m.cleared_at, m.timezone) if m.cleared_at is not None else "",
        "active_for": format_duration(max(0, end - m.raised_at)),
        "for_window": format_duration(m.trend.window) if m.trend is not None else "",
        "trend": trend_text(m.trend, lang),
        "on_shift": on_shift_text(m.on_shift, lang),
        "ack_link": m.ack_link or "",
        "step": str(m.step + 1),
        "alert_id": m.alert_id,
    }


def fill(template: str, values: Mapping[str, str]) -> str:
    """Format line by line, leaving out lines whose fields are all empty."""
    lines = []
    for line in template.split("\n"):
        names = template_fields(line)
        if names and all(not values.get(n) for n in names):
            continue
        lines.append(line.format_map({k: values.get(k, "") for k in TEMPLATE_FIELDS}))
    return "\n".join(lines)


def render(
    m: AlertMessage, lang: Language = "en", templates: Mapping[Language, Templates] | None = None
) -> Message:
    """The push for one alert in ``lang``; configured templates override the defaults part by part."""
    values = fields(m, lang)
    custom = (templates or {}).get(lang)
    default = DEFAULTS[lang]
    title = (custom.title if custom and custom.title else None) or default.title or ""
    body = (custom.body if custom and custom.body else None) or default.body or ""
    return Message(fill(title, values), fill(body, values))


def render_digest(
    items: Sequence[AlertMessage], lang: Language, since: int, until: int, limit: int = 20
) -> Message:
    """One message for a flood: counts by severity, then the newest ``limit`` alerts, one line each."""
    sev = SEVERITY_LABELS[lang]
    span = format_duration(max(0, until - since))
    counts: dict[str, int] = {}
    for m in items:
        counts[m.severity] = counts.get(m.severity, 0) + 1
    order = sorted(counts, key=lambda s: -list(sev).index(s) if s in sev else 0)
    summary = ", ".join(f"{sev.get(s, s)} {counts[s]}" for s in order)
    if lang == "zh":
        title = f"【报警汇总】{span} 内 {len(items)} 条报警"
        head = f"报警过多,已合并发送({summary})。请到看板逐条确认。"
        more = "…… 另有 {} 条"
    else:
        title = f"[ALERT FLOOD] {len(items)} alerts in {span}"
        head = f"Too many alerts to push one by one ({summary}). Acknowledge them on the board."
        more = "... and {} more"
    tz = items[0].timezone if items else "UTC"
    lines = [head]
    for m in sorted(items, key=lambda m: m.raised_at, reverse=True)[:limit]:
        label = f"[{sev.get(m.severity, m.severity)}] {KIND_LABELS[lang][m.kind]}"
        lines.append(f"- {label} {m.rule} @ {m.asset}: {_num(m.value)} ({_when(m.raised_at, tz)})")
    if len(items) > limit:
        lines.append(more.format(len(items) - limit))
    return Message(title, "\n".join(lines))
