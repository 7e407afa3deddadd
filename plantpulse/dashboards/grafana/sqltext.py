"""SQL text for Grafana panels: literals, inline tables, time buckets.

Grafana's SQL data sources take query text, not bound parameters, so the few values a
dashboard bakes in (asset paths, rule limits, shift times) are written here as literals and
nowhere else. Two Grafana passes run over that text before PostgreSQL sees it: template
variables (``$name``, ``${name}``, ``[[name]]``) and macros (``$__name(...)``). A ``$`` or
``[[`` inside a baked string could be mistaken for either, so such a ``$`` (before a name or
``{``) or ``[`` (before ``[``) is spelt ``chr(36)`` / ``chr(91)`` in the SQL; everything else is
quoted the standard way (``'`` doubled; ``standard_conforming_strings`` is on in every
supported PostgreSQL).

Panels refer to dashboard variables only as ``${name:sqlstring}`` (Grafana quotes and escapes
each value) and to time through the macros and ``$__interval_ms``; see docs/dashboards.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from plantpulse.dashboards.grafana.config import Flavor
from plantpulse.rules.model import glob_regex

SqlValue = str | float | int | None

EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
STRIDE = "($__interval_ms * INTERVAL '1 millisecond')"
"""The panel's bucket width: Grafana's ``$__interval_ms`` (range / max data points, rounded)."""

ROLLUP_FROM_MS = 60_000
"""From this ``$__interval_ms`` on, series read the 1-minute rollup ``samples_1m`` instead of
``samples``: a bucket of at least a minute is made of whole rollup rows."""


def literal(value: SqlValue) -> str:
    """``value`` as a SQL literal that survives Grafana's variable and macro passes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::float8"
        if math.isinf(value):
            return "'Infinity'::float8" if value > 0 else "'-Infinity'::float8"
        return repr(value)
    if "\x00" in value:
        raise ValueError("a NUL character cannot be written into SQL text")
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(value):
        nxt = value[i + 1 : i + 2]
        if (ch == "$" and (nxt == "{" or nxt.isalnum() or nxt == "_")) or (ch == "[" and nxt == "["):
            if i > start:
                parts.append(_quote(value[start:i]))
            parts.append(f"chr({ord(ch)})")
            start = i + 1
    if start < len(value) or not parts:
        parts.append(_quote(value[start:]))
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def typed(value: SqlValue, sqltype: str) -> str:
    """A literal with an explicit type, so inline tables have column types even when NULL."""
    return f"CAST({literal(value)} AS {sqltype})"


def inline_table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[SqlValue]]) -> str:
    """``SELECT`` of constant rows; the first row's casts type the columns (PostgreSQL types a
    ``VALUES`` list by its rows together); an empty table when there are no rows."""
    names = ", ".join(name for name, _ in columns)
    if not rows:
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {name}" for name, t in columns)
        return f"SELECT {nulls} WHERE FALSE"
    first = "(" + ", ".join(typed(v, t) for v, (_, t) in zip(rows[0], columns, strict=True)) + ")"
    rest = ["(" + ", ".join(literal(v) for v in row) + ")" for row in rows[1:]]
    body = ",\n    ".join([first, *rest])
    return f"SELECT * FROM (VALUES\n    {body}) AS v({names})"


def glob_to_regex(pattern: str) -> str:
    """A rule's tag glob as an anchored PostgreSQL regular expression: the rules engine's own
    (``glob_regex``: ``re.escape`` for literals, ``[^/]`` classes, ``\\Z`` at the end) means the
    same in PostgreSQL's advanced regular expressions, anchored with ``^``."""
    return "^" + glob_regex(pattern).pattern


def bucket(flavor: Flavor, column: str) -> str:
    """``column`` floored to the panel's ``$__interval``: ``time_bucket`` on TimescaleDB,
    ``date_bin`` (PostgreSQL >= 14) otherwise; both align buckets to the Unix epoch."""
    if flavor == "timescale":
        return f"time_bucket({STRIDE}, {column}, origin => {EPOCH})"
    return f"date_bin({STRIDE}, {column}, {EPOCH})"
