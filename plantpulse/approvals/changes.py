"""The change log read back as changes, live versions and rule versions. Pure.

    h = fold(records)              # the whole log, oldest first
    h.live["rules/weld.yaml"]      # the Version running now (text, sha256, the change that made it)
    h.changes[7].chain             # change #7's ChainState (replayed through chain.advance)
    h.rule_versions["weld-dev"]    # the change that last changed that rule, as it runs now
    as_of(records, 7)              # the History right when change #7 went live

Record details (what each action writes; ``log.py`` seals them):

* ``baseline``  {files: [{file, kind, text, sha256}]}: files adopted as they were on disk when
  approvals were switched on (the first version of each), live at once;
* ``proposed``  {files: [{file, kind, text, sha256, base}], reason, diffs, prediction, chain,
  emergency}: the full new text of each file, the change it was proposed against (``base``),
  the per-item diffs, the backtest, and the chain it must pass, fixed at proposal time;
* ``approved`` {level, role, comment} / ``rejected`` {level, role, reason};
* ``activated`` {files, emergency}: the change went live (last approval, or an emergency);
* ``notified`` {level, kind, to, delivered, failed}: approvers or the proposer were told;
* ``applied``   {process, watermark, kept, carried, fresh, removed, closed}: a running pipeline
  switched to the change at a batch boundary.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from plantpulse.approvals import chain as ch
from plantpulse.approvals.diff import FileDiff, Kind, items
from plantpulse.approvals.log import Record

log = logging.getLogger(__name__)

__all__ = ["Change", "History", "Version", "as_of", "fold", "sha256"]

Status = Literal["baseline", "pending", "stale", "live", "approved", "rejected", "superseded"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Version:
    """One file's text as one change made it."""

    file: str
    kind: Kind
    text: str
    sha256: str
    change: int
    base: int | None = None  # the live version it was proposed against (None: a new file or a baseline)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "text": self.text,
            "sha256": self.sha256,
            "base": self.base,
        }


@dataclass
class Change:
    id: int
    kind: Literal["baseline", "proposed"]
    by: str
    at: int
    reason: str
    files: tuple[Version, ...]
    diffs: tuple[FileDiff, ...] = ()
    prediction: Mapping[str, Any] | None = None
    chain: ch.ChainState | None = None
    emergency: bool = False
    activated_at: int | None = None
    records: list[Record] = field(default_factory=list)
    applied: list[Mapping[str, Any]] = field(default_factory=list)

    def touches(self, rule: str) -> bool:
        """Whether this change adds, changes or removes ``rule`` (or holds it, for a baseline)."""
        if self.kind == "baseline":
            return any(rule in items(v.kind, v.text, v.file)[0] for v in self.files)
        return any(d.id == rule and d.status != "unchanged" for f in self.diffs for d in f.items)


@dataclass
class History:
    changes: dict[int, Change] = field(default_factory=dict)
    live: dict[str, Version] = field(default_factory=dict)
    rule_versions: dict[str, int] = field(default_factory=dict)
    head: int = 0
    current: int | None = None  # the change that made the live set what it is (last activation)

    @property
    def next_id(self) -> int:
        return max(self.changes, default=0) + 1

    def stale(self, c: Change) -> list[str]:
        """Files of a pending change whose live version moved on since it was proposed."""
        out = []
        for v in c.files:
            live = self.live.get(v.file)
            if (live.change if live is not None else None) != v.base:
                out.append(v.file)
        return out

    def status(self, c: Change) -> Status:
        if c.kind == "baseline":
            return "baseline" if self._is_live(c) else "superseded"
        assert c.chain is not None
        if c.chain.outcome == "rejected":
            return "rejected"
        if c.activated_at is not None:
            return "live" if self._is_live(c) else "superseded"
        if c.chain.outcome == "approved":
            return "approved"
        return "stale" if self.stale(c) else "pending"

    def _is_live(self, c: Change) -> bool:
        return any(self.live.get(v.file) is not None and self.live[v.file].change == c.id for v in c.files)

    def versions(self, kind: Kind) -> dict[str, str]:
        """file -> live text of every live file of ``kind``."""
        return {f: v.text for f, v in sorted(self.live.items()) if v.kind == kind}


def _versions(detail: Mapping[str, Any], change: int) -> tuple[Version, ...]:
    return tuple(
        Version(str(f["file"]), f["kind"], str(f["text"]), str(f["sha256"]), change, f.get("base"))
        for f in detail.get("files", [])
    )


def _activate(h: History, c: Change, at: int) -> None:
    c.activated_at = at
    h.current = c.id
    for v in c.files:
        h.live[v.file] = v
    if c.kind == "baseline":
        for v in c.files:
            if v.kind == "rules":
                h.rule_versions.update(dict.fromkeys(items("rules", v.text, v.file)[0], c.id))
        return
    for d in c.diffs:
        if d.kind != "rules":
            continue
        for it in d.items:
            if it.status in ("added", "changed"):
                h.rule_versions[it.id] = c.id
            elif it.status == "removed":
                h.rule_versions.pop(it.id, None)


def _event(r: Record, c: Change) -> ch.Event | None:
    d = r.data
    if r.action == "approved":
        return ch.Approve(r.at, r.actor, frozenset({str(d.get("role", ""))}), d.get("comment"))
    if r.action == "rejected":
        return ch.Reject(r.at, r.actor, frozenset({str(d.get("role", ""))}), str(d.get("reason", "")))
    if r.action == "notified":
        return ch.Notified(r.at, int(d.get("level", 0)), d.get("kind", "request"))
    return None


def fold(records: Sequence[Record]) -> History:
    """The state the log describes. Records that do not fit (an edited log) are skipped with a
    warning; ``rules log --verify`` names them."""
    h = History()
    for r in records:
        h.head = r.seq
        d = r.data
        c = h.changes.get(r.change)
        if r.action in ("baseline", "proposed"):
            if c is not None:
                log.warning("change log record %d: change #%d is made twice; skipped", r.seq, r.change)
                continue
            kind: Literal["baseline", "proposed"] = "baseline" if r.action == "baseline" else "proposed"
            c = Change(r.change, kind, r.actor, r.at, str(d.get("reason", "")), _versions(d, r.change))
            h.changes[r.change] = c
            c.records.append(r)
            if r.action == "baseline":
                _activate(h, c, r.at)
                continue
            spec = d.get("chain", {})
            c.diffs = tuple(FileDiff.from_json(x) for x in d.get("diffs", []))
            c.prediction = d.get("prediction")
            c.emergency = bool(d.get("emergency", False))
            c.chain = ch.plan(
                r.change,
                spec.get("levels") or ["?"],
                proposed_by=r.actor,
                at=r.at,
                remind=spec.get("remind"),
                escalate_after=spec.get("escalate_after"),
                escalate_to=spec.get("escalate_to", ()),
                emergency=c.emergency,
            )
            continue
        if c is None:
            log.warning("change log record %d: no change #%d before it; skipped", r.seq, r.change)
            continue
        c.records.append(r)
        if r.action == "activated":
            _activate(h, c, r.at)
        elif r.action == "applied":
            c.applied.append(d)
        elif c.chain is not None and (event := _event(r, c)) is not None:
            c.chain, actions = ch.advance(c.chain, event)
            if any(isinstance(a, ch.Refuse) for a in actions):
                log.warning("change log record %d: %s; skipped", r.seq, actions[0])
    return h


def as_of(records: Sequence[Record], change: int) -> History | None:
    """The state the log described when ``change`` went live (what ran from then until the
    next activation); None if it never did."""
    for i, r in enumerate(records):
        if r.change == change and r.action in ("baseline", "activated"):
            return fold(records[: i + 1])
    return None
