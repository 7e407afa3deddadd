"""Approvers told, reminded and escalated to; proposers told the outcome (the chains' ``Notify``).

    n = ApprovalNotifier(plant, log, clock=SystemClock())
    await n.step()                 # one pass: what every chain calls for now is sent and recorded
    await n.run(stop)              # in ``plantpulse run``: step at each due time or news in the log

The chain decides (``chain.advance(state, Tick(now))``), this adapter performs: it resolves
the roles to people (``holders.recipients``), renders one message per person in their
language, sends it over each of their Apprise contacts (``team.people.*.contacts``, the same
URLs and the same ``channels.AppriseSender`` as the alert notifier; not its outbox and channel
queues, whose rows, retries and escalation are per alert: here the change log is the record
and the reminder timer the retry), and appends a ``notified`` record naming who was reached
and who was not. The record is what the chain replays as ``Notified``, so after a restart
nothing is asked twice; a crash between sending and recording sends that one message again
(at-least-once, like the alert outbox). A person nobody can reach is recorded as not
reached, never retried in a loop: the reminder timer asks again.

Only one process should run this per plant (``plantpulse run`` does); the command line and
the API only write the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from plantpulse.approvals import chain as ch
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.changes import Change, History, fold
from plantpulse.approvals.holders import recipients
from plantpulse.approvals.log import Entry
from plantpulse.approvals.service import Plant, record
from plantpulse.notifier.channels import AppriseSender
from plantpulse.notifier.clock import Clock
from plantpulse.notifier.messages import ROLE_LABELS
from plantpulse.people.schema import Language

log = logging.getLogger(__name__)

__all__ = ["ApprovalNotifier", "Sender", "message"]


class Sender(Protocol):
    """One provider call (``notifier.channels.AppriseSender``); errors come back as (False,
    text), never raised."""

    async def notify(self, url: str, title: str, body: str, notify_type: str) -> tuple[bool, str]: ...


_TEXT: dict[Language, dict[str, str]] = {
    "en": {
        "request": "[approval] change #{id} waits for you ({role})",
        "reminder": "[approval, reminder] change #{id} waits for you ({role}) since {since}",
        "escalation": "[approval, escalated] change #{id} waits for {role} since {since}",
        "approved": "[approval] change #{id} is approved and live",
        "reviewed": "[approval] emergency change #{id} is approved after review",
        "rejected": "[approval] change #{id} was rejected by {by}",
        "by": "Proposed by {by}: {reason}",
        "files": "Files: {files}",
        "load": "Predicted alarms over {days} days: {old} -> {new}",
        "how": "Approve: plantpulse rules approve {id} -c plant.yaml --by NAME",
        "page": "Details: {url}",
        "why": "Reason: {reason}",
        "emergency": "EMERGENCY: live since it was proposed; this is the review.",
    },
    "zh": {
        "request": "【待审批】变更 #{id} 等待您审批({role})",
        "reminder": "【审批提醒】变更 #{id} 自 {since} 起等待您审批({role})",
        "escalation": "【审批升级】变更 #{id} 自 {since} 起等待{role}审批,尚无答复",
        "approved": "【审批】变更 #{id} 已批准并生效",
        "reviewed": "【审批】紧急变更 #{id} 已通过事后审核",
        "rejected": "【审批】变更 #{id} 已被 {by} 驳回",
        "by": "提出人 {by}:{reason}",
        "files": "文件:{files}",
        "load": "预测 {days} 天内报警数:{old} -> {new}",
        "how": "批准:plantpulse rules approve {id} -c plant.yaml --by 姓名",
        "page": "详情:{url}",
        "why": "理由:{reason}",
        "emergency": "紧急变更:提出时已生效,本次为事后审核。",
    },
}


def message(c: Change, n: ch.Notify, lang: Language, since: str, url: str | None) -> tuple[str, str]:
    """(title, body) of one notification about change ``c``. Pure."""
    t = _TEXT[lang]
    chain = c.chain
    assert chain is not None
    role = chain.role(min(n.level, len(chain.levels) - 1))
    role = ROLE_LABELS[lang].get(role, role)
    if n.kind == "outcome":
        key = "rejected" if chain.outcome == "rejected" else "reviewed" if c.emergency else "approved"
        title = t[key].format(id=c.id, by=chain.decided_by)
    else:
        title = t[n.kind].format(id=c.id, role=role, since=since)
    lines = [
        t["by"].format(by=c.by, reason=c.reason),
        t["files"].format(files=", ".join(v.file for v in c.files)),
    ]
    if c.emergency:
        lines.append(t["emergency"])
    for d in c.diffs:
        lines.extend(f"  {it.summary()}" for it in d.changed[:10])
    p = c.prediction
    if p:
        lines.append(
            t["load"].format(days=p.get("days", "?"), old=p["alerts"]["old"], new=p["alerts"]["new"])
        )
    if n.kind == "outcome" and chain.outcome == "rejected" and chain.reason:
        lines.append(t["why"].format(reason=chain.reason))
    if n.kind != "outcome":
        lines.append(t["how"].format(id=c.id))
    if url is not None:
        lines.append(t["page"].format(url=f"{url}/approvals/{c.id}"))
    return title, "\n".join(lines)


class ApprovalNotifier:
    def __init__(
        self,
        plant: Plant,
        log_: ChangeLog,
        *,
        clock: Clock,
        sender: Sender | None = None,
        page_url: str | None = None,
    ) -> None:
        self.plant = plant
        self.log = log_
        self.clock = clock
        self.sender: Sender = sender or AppriseSender()
        self.page_url = page_url.rstrip("/") if page_url else None
        self._due: int | None = None
        self.counts: dict[str, int] = {"sent": 0, "failed": 0}  # people reached, and not

    @property
    def next_due(self) -> int | None:
        """When the last ``step`` saw the next notification due (None: none until news)."""
        return self._due

    async def step(self) -> int:
        """Send and record what is due now; returns how many notifications went out."""
        await self.log.open()  # no-op when open; opens it late when the database was down at start
        h = fold(await self.log.records())
        now = self.clock.now()
        entries: list[Entry] = []
        for c in h.changes.values():
            if c.chain is None:
                continue
            _, actions = ch.advance(c.chain, ch.Tick(now))
            for a in actions:
                if isinstance(a, ch.Notify):
                    entries.append(await self._perform(c, a, now))
        if entries:
            await record(self.log, self.plant, lambda _: entries)
            h = fold(await self.log.records())
        self._due = next_due(h)
        return len(entries)

    async def _perform(self, c: Change, n: ch.Notify, now: int) -> Entry:
        team = self.plant.team
        assert c.chain is not None
        since = self._local(c.chain.since)
        to = recipients(team, n)
        delivered: list[str] = []
        failed: list[str] = []
        for person in to:
            title, body = message(c, n, team.language_of(person), since, self.page_url)
            ok = False
            for _, url in team.contacts(person, None):
                sent, why = await self.sender.notify(url, title, body, "info")
                ok = ok or sent
                if not sent:
                    log.warning("approval notice to %s (change #%d) failed: %s", person, c.id, why)
            (delivered if ok else failed).append(person)
        self.counts["sent"] += len(delivered)
        self.counts["failed"] += len(failed)
        detail: Mapping[str, Any] = {
            "level": n.level, "kind": n.kind, "to": to, "delivered": delivered, "failed": failed,
        }  # fmt: skip
        return Entry(c.id, now, "notified", "plantpulse", detail)

    def _local(self, ns: int) -> str:
        from plantpulse.people.roster import Roster

        roster = Roster(self.plant.team, self.plant.loaded.plant.site.timezone)
        return roster.local(ns).strftime("%Y-%m-%d %H:%M")

    async def run(self, stop: asyncio.Event, poll: int | None = None) -> None:
        """Step whenever something is due, and at least every ``poll`` ns (news in the log:
        a proposal or an approval made elsewhere), until ``stop``."""
        every = poll if poll is not None else self.plant.approvals.poll
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # a store outage must not end approvals for the run: retry
                log.exception("approval notifications: step failed; retrying")
            now = self.clock.now()
            wake = now + every if self._due is None else min(now + every, max(self._due, now))
            sleeper = asyncio.create_task(self.clock.sleep_until(wake))
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (sleeper, stopper):
                    t.cancel()
                await asyncio.gather(sleeper, stopper, return_exceptions=True)


def next_due(h: History) -> int | None:
    """The earliest next due time of every chain in ``h``."""
    dues = (ch.next_due(c.chain) for c in h.changes.values() if c.chain is not None)
    return min((d for d in dues if d is not None), default=None)
