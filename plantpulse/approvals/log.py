"""The tamper-evident change log: append-only records, each sealed with the hash of the one before. Pure.

    rec = seal(prev, Entry(change=7, at=t, action="approved", actor="李娜", detail={...}))
    findings = verify(records, witness=(seq, hash))     # [] when the log is intact

Choices, and why:

* The hash is SHA-256 over a canonical serialisation: the JSON array ``[seq, change, at, action,
  actor, detail, prev]`` with no spaces, UTF-8, where ``detail`` is itself canonical JSON (sorted
  keys, no NaN) kept as TEXT and hashed verbatim. Databases rewrite JSON (PostgreSQL's jsonb
  reorders keys and reformats numbers), so the text that was hashed is the text that is stored.
* ``at`` is integer nanoseconds, not a timestamp column: what is hashed must read back exactly.
* Sequence numbers are dense from 1, so a deleted row shows as a gap; each record names the
  hash of the record before it (``prev``; the first names ``GENESIS``), so a row rewritten with
  a fresh hash breaks the link to its successor. Truncating the newest rows leaves a shorter,
  valid chain: only a *witness* (a (seq, hash) pair kept elsewhere: the head file each machine
  writes, a printed or exported head) reveals that, and ``verify`` checks one when given.
* There is no key: anyone who can rewrite every row after an edit, and every witness, can hide
  it. The chain makes a quiet edit impossible, not a determined rewrite by a database owner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GENESIS",
    "Action",
    "Entry",
    "Finding",
    "Record",
    "canonical",
    "digest",
    "rehash",
    "seal",
    "verify",
]

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

Action = Literal["baseline", "proposed", "approved", "rejected", "activated", "notified", "applied"]
ACTIONS: tuple[Action, ...] = (
    "baseline", "proposed", "approved", "rejected", "activated", "notified", "applied",
)  # fmt: skip


def canonical(obj: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no whitespace, UTF-8 text, no NaN."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Entry:
    """What a caller appends; the log gives it its place (``seq``) and seals it."""

    change: int
    at: int  # ns since the epoch, UTC: when it happened (wall clock of the actor)
    action: Action
    actor: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    change: int
    at: int
    action: str  # an Action; kept as read, so an edited value is reported, not refused
    actor: str
    detail: str  # canonical JSON, as hashed
    prev: str
    hash: str

    @property
    def data(self) -> dict[str, Any]:
        """``detail`` parsed (an edited, unreadable detail reads as ``{}``; verify names it)."""
        try:
            out = json.loads(self.detail)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}


def digest(*, seq: int, change: int, at: int, action: str, actor: str, detail: str, prev: str) -> str:
    payload = canonical([seq, change, at, action, actor, detail, prev])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def rehash(r: Record) -> str:
    """The hash ``r`` should carry, recomputed from its fields."""
    return digest(
        seq=r.seq, change=r.change, at=r.at, action=r.action, actor=r.actor, detail=r.detail, prev=r.prev
    )


def seal(prev: Record | None, entry: Entry) -> Record:
    """``entry`` as the record after ``prev`` (None: the first record)."""
    seq = 1 if prev is None else prev.seq + 1
    before = GENESIS if prev is None else prev.hash
    detail = canonical(dict(entry.detail))
    e = entry
    h = digest(seq=seq, change=e.change, at=e.at, action=e.action, actor=e.actor, detail=detail, prev=before)
    return Record(seq, entry.change, entry.at, entry.action, entry.actor, detail, before, h)


@dataclass(frozen=True, slots=True)
class Finding:
    """One break in the chain, at record ``seq`` (the first record it concerns)."""

    seq: int
    what: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.what}"


def _name(r: Record) -> str:
    return f"change #{r.change} {r.action} by {r.actor}"


def verify(records: Sequence[Record], witness: tuple[int, str] | None = None) -> list[Finding]:
    """Every break in ``records`` (the whole log, in ``seq`` order), oldest first:

    * a record whose content no longer matches its hash: it was edited;
    * a gap in the sequence: records were deleted there;
    * a record whose ``prev`` is not the hash of the record before it: the record before was
      rewritten (hash included) or replaced;
    * with ``witness`` (seq, hash): the log must still hold that record with that hash."""
    out: list[Finding] = []
    prev_hash, expected = GENESIS, 1
    for r in records:
        if r.seq != expected:
            if r.seq > expected:
                gone = f"record {expected}" if r.seq == expected + 1 else f"records {expected}-{r.seq - 1}"
                out.append(Finding(expected, f"{gone} deleted (the sequence jumps to {r.seq})"))
            else:
                out.append(Finding(r.seq, f"out of order or duplicated (expected {expected})"))
        elif r.prev != prev_hash:
            what = (
                "does not start from the genesis hash"
                if r.seq == 1
                else f"does not follow record {r.seq - 1}: that record was rewritten or replaced"
            )
            out.append(Finding(r.seq, what))
        if rehash(r) != r.hash:
            out.append(Finding(r.seq, f"edited: {_name(r)} no longer matches its hash"))
        prev_hash, expected = r.hash, max(expected, r.seq) + 1
    if witness is not None:
        seq, h = witness
        held = next((r for r in records if r.seq == seq), None)
        if held is None:
            last = records[-1].seq if records else 0
            out.append(
                Finding(seq, f"deleted: the log ends at record {last}, but record {seq} ({h[:12]}…) was seen")
            )
        elif held.hash != h:
            out.append(Finding(seq, f"replaced: its hash is not the {h[:12]}… seen before"))
    return out
