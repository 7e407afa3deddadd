"""What a proposal changes, rule by rule (or KPI by KPI), read from the YAML as written. Pure.

    d = diff_file("rules/weld.yaml", "rules", old_text, new_text)   # old_text None: a new file
    d.items        # ItemDiff per id: added | removed | changed | unchanged, with key-level changes
    d.text         # the unified diff of the whole file, for people

Items are compared as YAML data, not as compiled rules: what a quality engineer wrote is what
an approver reads and signs, and it does not depend on how the engine represents a rule. Keys
are compared by their path (``deviation.limit``), lists as whole values. A rule change is a
*condition* change unless only the presentation keys (``PRESENTATION``) differ: that decides
whether a running stream keeps its state on hot reload (``reload.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from plantpulse import yamlsrc
from plantpulse.approvals.log import canonical

__all__ = ["PRESENTATION", "FileDiff", "ItemDiff", "Kind", "diff_file", "fingerprint", "items"]

Kind = Literal["rules", "kpis"]
Status = Literal["added", "removed", "changed", "unchanged"]

PRESENTATION = frozenset({"description", "severity", "message", "notify"})
"""Rule keys that change what an alert says or whom it reaches, not when it fires."""


def jsonable(value: Any) -> Any:
    """YAML data as JSON data (YAML dates and other scalars become text)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def items(kind: Kind, text: str, file: str = "<text>") -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(id -> item as written, the file's other top-level keys) of one rule or KPI file."""
    doc = yamlsrc.load(file, text=text)
    data = jsonable(doc.data) if isinstance(doc.data, Mapping) else {}
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(data.get(kind) or []):
        if isinstance(item, dict):
            out[str(item.get("id", f"#{i + 1}"))] = item
    return out, {k: v for k, v in data.items() if k != kind}


def fingerprint(item: Mapping[str, Any], *, condition: bool = False) -> str:
    """SHA-256 (hex, 16 chars) of an item as written; with ``condition``, presentation keys left out."""
    keep = {k: v for k, v in item.items() if not (condition and k in PRESENTATION)}
    return hashlib.sha256(canonical(keep).encode("utf-8")).hexdigest()[:16]


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, value


def key_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """(key path, old, new) for every key path whose value differs; a missing side is None."""
    a, b = dict(_flat(old)), dict(_flat(new))
    keys = list(dict.fromkeys([*a, *b]))
    return tuple((k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k))


@dataclass(frozen=True, slots=True)
class ItemDiff:
    id: str
    status: Status
    changes: tuple[tuple[str, Any, Any], ...] = ()
    condition: bool = False  # changed beyond PRESENTATION (rules): a running stream starts fresh

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "changes": [[k, o, n] for k, o, n in self.changes],
            "condition": self.condition,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ItemDiff:
        changes = tuple((str(k), o, n) for k, o, n in d.get("changes", []))
        return cls(str(d["id"]), d["status"], changes, bool(d.get("condition", False)))

    def summary(self) -> str:
        if self.status != "changed":
            return f"{self.id}: {self.status}"
        return f"{self.id}: " + ", ".join(f"{k} {_show(o)} -> {_show(n)}" for k, o, n in self.changes)


def _show(v: Any) -> str:
    return "(none)" if v is None else canonical(v) if isinstance(v, list | dict) else str(v)


@dataclass(frozen=True, slots=True)
class FileDiff:
    file: str
    kind: Kind
    items: tuple[ItemDiff, ...]
    settings: tuple[tuple[str, Any, Any], ...]  # the file's other keys (KPI files: alarms, shifts, ...)
    text: tuple[str, ...]  # unified diff lines

    @property
    def changed(self) -> list[ItemDiff]:
        return [d for d in self.items if d.status != "unchanged"]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "items": [d.to_json() for d in self.items],
            "settings": [[k, o, n] for k, o, n in self.settings],
            "text": list(self.text),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FileDiff:
        return cls(
            str(d["file"]),
            d["kind"],
            tuple(ItemDiff.from_json(x) for x in d["items"]),
            tuple((str(k), o, n) for k, o, n in d.get("settings", [])),
            tuple(d.get("text", [])),
        )


def diff_file(file: str, kind: Kind, old_text: str | None, new_text: str) -> FileDiff:
    """The per-item and textual difference of one file (``old_text`` None: the file is new)."""
    old, old_settings = items(kind, old_text, file) if old_text is not None else ({}, {})
    new, new_settings = items(kind, new_text, file)
    out: list[ItemDiff] = []
    for ident in dict.fromkeys([*old, *new]):
        a, b = old.get(ident), new.get(ident)
        if a is None:
            out.append(ItemDiff(ident, "added", condition=True))
        elif b is None:
            out.append(ItemDiff(ident, "removed", condition=True))
        elif a == b:
            out.append(ItemDiff(ident, "unchanged"))
        else:
            changes = key_changes(a, b)
            cond = kind == "kpis" or any(k.partition(".")[0] not in PRESENTATION for k, _, _ in changes)
            out.append(ItemDiff(ident, "changed", changes, cond))
    lines = difflib.unified_diff(
        (old_text or "").splitlines(),
        new_text.splitlines(),
        f"{file} (live)" if old_text is not None else "/dev/null",
        f"{file} (proposed)",
        lineterm="",
    )
    return FileDiff(file, kind, tuple(out), key_changes(old_settings, new_settings), tuple(lines))
