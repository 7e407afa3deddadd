"""Alert message templates: ``str.format`` syntax over a fixed set of fields.

Templates are written by users, so rendering must never reach attributes or items of Python
objects (``{value.__class__}``); field names are checked against a per-kind whitelist at load
time and rendering walks the parsed template itself instead of calling ``str.format``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

_FORMATTER = string.Formatter()

COMMON_FIELDS: dict[str, float | str] = {
    "value": 0.0,
    "tag": "",
    "asset": "",
    "rule": "",
    "severity": "",
    "duration": "",
}
KIND_FIELDS: dict[str, dict[str, float | str]] = {
    "above": {"threshold": 0.0, "limit": 0.0},
    "below": {"threshold": 0.0, "limit": 0.0},
    "outside": {"low": 0.0, "high": 0.0},
    "deviation": {"setpoint": 0.0, "limit": 0.0, "deviation": 0.0},
    "rate": {"threshold": 0.0, "limit": 0.0, "rate": 0.0, "per": ""},
    "stale": {"stale": ""},
    "expr": {"expr": ""},
}


def fields_for(kind: str) -> dict[str, float | str]:
    return {**COMMON_FIELDS, **KIND_FIELDS[kind]}


def check(template: str, kind: str) -> str | None:
    """Return a description of the first problem in ``template`` or None when it is fine."""
    allowed = fields_for(kind)
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError as e:
        return f"invalid message template: {e}"
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if name == "" or name.isdigit():
            return "message fields must be named, like {value}"
        if "." in name or "[" in name:
            return f"field {{{name}}}: attribute and index access are not allowed"
        if name not in allowed:
            return f"unknown message field {{{name}}}; {kind} rules know " + ", ".join(sorted(allowed))
        if spec and "{" in spec:
            return f"field {{{name}}}: nested fields in a format spec are not allowed"
        if conv not in (None, "s", "r"):
            return f"field {{{name}}}: conversion !{conv} is not allowed"
        try:
            format(allowed[name], spec or "")
        except (ValueError, TypeError) as e:
            return f"field {{{name}}}: bad format spec {spec!r}: {e}"
    return None


def render(template: str, values: Mapping[str, float | str | None]) -> str:
    """Render a template that passed ``check``; a missing value renders as ``?``."""
    out: list[str] = []
    for literal, name, spec, conv in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        v = values.get(name)
        if v is None:
            out.append("?")
            continue
        if conv == "r":
            out.append(repr(v))
        elif conv == "s":
            out.append(format(str(v), spec or ""))
        else:
            try:
                out.append(format(v, spec or ""))
            except (ValueError, TypeError):
                out.append(str(v))
    return "".join(out)
