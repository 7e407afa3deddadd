"""What each ``Send`` becomes: one outbox row per person and channel, in the person's language,
with their acknowledge link, through flood control. Pure: time comes in as ``now``, links from
an injected signer (the one source of randomness, a nonce, stays outside).

``AlertInfo`` is what messages say about an alert. It is taken from the raise event (with its
trend and on-shift snapshot) and kept with the escalation in the outbox, so a restart renders
the same messages without reading the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from plantpulse.alerts import AlertEvent, Trend
from plantpulse.notifier import escalation as esc
from plantpulse.notifier.flood import Deliver, FloodControl
from plantpulse.notifier.links import link, new_nonce, sign
from plantpulse.notifier.messages import AlertMessage, render, render_digest
from plantpulse.notifier.outbox import OutboxRow
from plantpulse.people.schema import TeamConfig

Signer = Callable[[str, str, int], str | None]
"""(alert id, person, now) -> an acknowledge link, or None when links are off."""


def signer(secret: bytes | None, base: str | None, ttl: int) -> Signer | None:
    """Signed one-time links valid ``ttl`` ns (None when links are off); each with a fresh nonce."""
    if secret is None or base is None:
        return None
    return lambda alert_id, person, now: link(base, sign(secret, alert_id, person, now + ttl, new_nonce()))


def _float(v: Any) -> float:
    """A stored number back (non-finite ones are stored as text); anything else is NaN."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def safe_text(s: str) -> str:
    """``s`` as valid UTF-8: lone surrogates (undecodable bytes upstream) become escapes."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


@dataclass(frozen=True, slots=True)
class AlertInfo:
    rule: str
    tag: str
    asset: str
    severity: str
    message: str
    value: float
    raised_at: int
    on_shift: Mapping[str, Sequence[str]] = field(default_factory=dict)
    trend: Trend | None = None

    @classmethod
    def of(cls, ev: AlertEvent, on_shift: Mapping[str, Sequence[str]]) -> AlertInfo:
        shift = {str(role): [str(p) for p in people] for role, people in on_shift.items()}
        return cls(
            ev.rule, ev.tag, ev.asset, ev.severity, ev.message, ev.value, ev.raised_at, shift, ev.trend
        )

    def dump(self) -> dict[str, Any]:
        t = self.trend
        return {
            "rule": self.rule, "tag": self.tag, "asset": self.asset, "severity": self.severity,
            "message": self.message, "value": self.value, "raised_at": self.raised_at,
            "on_shift": {r: list(p) for r, p in self.on_shift.items()},
            "trend": None if t is None else [t.first, t.last, t.min, t.max, t.n, t.window],
        }  # fmt: skip

    @classmethod
    def load(cls, d: Mapping[str, Any]) -> AlertInfo:
        t = d.get("trend")
        trend = None
        if t is not None:
            first, last, lo, hi, n, window = t
            trend = Trend(_float(first), _float(last), _float(lo), _float(hi), int(n), int(window))
        return cls(
            str(d["rule"]), str(d["tag"]), str(d["asset"]), str(d["severity"]), str(d["message"]),
            _float(d["value"]), int(d["raised_at"]), dict(d.get("on_shift") or {}), trend,
        )  # fmt: skip


def _notify_type(severity: str, kind: str) -> str:
    if kind == "clear":
        return "success"
    return "failure" if severity in ("high", "critical") else "warning"


class Composer:
    """Renders for one team; holds no state that changes."""

    def __init__(self, team: TeamConfig, timezone: str, link: Signer | None = None) -> None:
        self.team = team
        self.timezone = timezone
        self._link = link

    def message(
        self,
        alert_id: str,
        info: AlertInfo,
        kind: esc.SendKind,
        step: int,
        now: int,
        *,
        cleared_at: int | None,
    ) -> AlertMessage:
        return AlertMessage(
            alert_id=alert_id, rule=info.rule, tag=info.tag, asset=info.asset, severity=info.severity,
            message=info.message, value=info.value, raised_at=info.raised_at, now=now, kind=kind, step=step,
            cleared_at=cleared_at, on_shift=info.on_shift, timezone=self.timezone, trend=info.trend,
        )  # fmt: skip

    def rows(
        self, send: esc.Send, info: AlertInfo, now: int, cleared_at: int | None = None
    ) -> tuple[list[OutboxRow], list[str]]:
        """Rows for one Send (status ``sending``: ``flood`` decides later) and the recipients
        with no contact on the step's channels."""
        rows: list[OutboxRow] = []
        unreachable: list[str] = []
        base = self.message(send.alert_id, info, send.kind, send.step, now, cleared_at=cleared_at)
        meta = {
            "rule": info.rule, "tag": info.tag, "asset": info.asset, "severity": info.severity,
            "message": info.message, "value": info.value, "raised_at": info.raised_at,
            "kind": send.kind, "step": send.step,
        }  # fmt: skip
        kind = _notify_type(info.severity, send.kind)
        for person in send.recipients:
            contacts = self.team.contacts(person, send.channels)
            if not contacts:
                unreachable.append(person)
                continue
            m = base
            if send.kind != "clear" and self._link is not None:
                m = replace(m, ack_link=self._link(send.alert_id, person, now))
            text = render(m, self.team.language_of(person), self.team.templates)
            title, body = safe_text(text.title), safe_text(text.body)
            key = f"{send.alert_id}/{send.step}/{send.kind}/{now}/{person}"
            for channel, _url in contacts:
                rows.append(
                    OutboxRow(send.alert_id, send.step, send.kind, person, channel, title, body, kind, now,
                              "sending", key, meta)
                )  # fmt: skip
        return rows, unreachable

    def digest(self, person: str, held: Sequence[OutboxRow], since: int, now: int) -> list[OutboxRow]:
        """One digest per channel the held rows used, summarising each held message once."""
        items: dict[str, AlertMessage] = {}
        for r in held:
            m = r.meta
            items.setdefault(r.msg_key, AlertMessage(
                alert_id=r.alert_id, rule=str(m.get("rule", "?")), tag=str(m.get("tag", "")),
                asset=str(m.get("asset", "")), severity=str(m.get("severity", "high")),
                message=str(m.get("message", "")), value=_float(m.get("value")),
                raised_at=int(m.get("raised_at", r.created_at)), now=now, kind=m.get("kind", "raise"),
                timezone=self.timezone,
            ))  # fmt: skip
        if not items:
            return []
        text = render_digest(list(items.values()), self.team.language_of(person), since, now)
        title, body = safe_text(text.title), safe_text(text.body)
        key = f"digest/{person}/{now}"
        meta = {"count": len(items)}
        return [
            OutboxRow("", 0, "digest", person, ch, title, body, "warning", now, "sending", key, meta)
            for ch in dict.fromkeys(r.channel for r in held)
        ]


def through_flood(rows: Sequence[OutboxRow], flood: FloodControl, now: int) -> list[OutboxRow]:
    """Offer each message (all channels of one person's message share a key) once to flood
    control; rows of held messages become ``held``."""
    decided: dict[str, Literal["sending", "held"]] = {}
    out = []
    for r in rows:
        status = decided.get(r.msg_key)
        if status is None:
            verdict = flood.offer(r.recipient, r.msg_key, now)
            status = decided[r.msg_key] = "sending" if isinstance(verdict, Deliver) else "held"
        out.append(r if r.status == status else replace(r, status=status))
    return out


__all__ = ["AlertInfo", "Composer", "Signer", "safe_text", "signer", "through_flood"]
