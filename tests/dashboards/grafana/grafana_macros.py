"""Expand a panel's SQL the way Grafana does before PostgreSQL runs it (test helper).

No Grafana server can run here, so the tests do Grafana's two passes themselves, following
its documentation:

1. Template variables, in the browser: ``${name:sqlstring}`` "formats single- and
   multi-valued variables into a comma-separated string, escapes ``'`` in each value by
   ``''`` and quotes each value with ``'``"; without a format, SQL data sources quote only
   multi-value variables ("Template variable values are only quoted when the template variable
   is a multi-value"). Global variables: ``$__interval`` (e.g. ``30s``) and ``$__interval_ms``
   (the same in milliseconds), ``$__from`` / ``$__to`` (epoch milliseconds).
   https://grafana.com/docs/grafana/latest/dashboards/variables/variable-syntax/#sqlstring
   https://grafana.com/docs/grafana/latest/datasources/postgres/query-editor/#using-variables-in-queries
   https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables
2. Macros, in the PostgreSQL data source's backend:
   ``$__time(col)`` -> ``col AS "time"``; ``$__timeEpoch(col)`` -> ``extract(epoch from col) as
   "time"``; ``$__timeFilter(col)`` -> ``col BETWEEN 'FROM' AND 'TO'``; ``$__timeFrom()`` /
   ``$__timeTo()`` -> ``'FROM'`` / ``'TO'`` (RFC 3339, UTC); ``$__timeGroup(col,'5m'[, fill])`` ->
   ``floor(extract(epoch from col)/300)*300``, or ``time_bucket('300.000s',col)`` when the data
   source has the TimescaleDB option ("Grafana uses time_bucket in the $__timeGroup macro");
   ``$__timeGroupAlias`` adds ``AS "time"``; ``$__unixEpochFilter(col)`` -> ``col >= FROM AND
   col <= TO`` (seconds); ``$__unixEpochFrom()`` / ``To()`` seconds; ``...Nano...`` nanoseconds.
   A fill argument only makes Grafana fill missing points afterwards; the SQL is the same.
   https://grafana.com/docs/grafana/latest/datasources/postgres/query-editor/#macros
   https://grafana.com/docs/grafana/v7.3/datasources/postgres/#macros (PostgreSQL examples)
   https://grafana.com/docs/grafana/latest/datasources/postgres/configure/ (TimescaleDB toggle)
   Where the pages give only examples, the exact spelling follows Grafana's implementation
   (pkg/tsdb/grafana-postgresql-datasource/macros.go: the macro pattern
   ``\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)``, arguments split on ``,`` and trimmed, times in
   ``time.RFC3339Nano``, an unknown macro is an error).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]")
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class MacroError(ValueError):
    """What Grafana would report instead of running the query."""


@dataclass(frozen=True)
class Request:
    """One panel refresh: the dashboard's time range, the panel's interval, the variables."""

    start: datetime
    end: datetime
    interval: timedelta = timedelta(seconds=30)
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    multi: frozenset[str] = frozenset()  # variables defined as multi-value / include All
    timescaledb: bool = False  # the data source's TimescaleDB option


def rfc3339nano(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: trailing zeros of the fraction dropped, ``Z``."""
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _format_interval(d: timedelta) -> str:
    """Grafana's ``$__interval`` text (gtime.FormatInterval): the largest unit that fits."""
    ms = round(d.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _parse_interval(text: str) -> float:
    m = _INTERVAL.fullmatch(text.strip().strip("'"))
    if m is None:
        raise MacroError(f"error parsing interval {text}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _sqlstring(value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def interpolate_variables(sql: str, req: Request) -> str:
    """Pass 1: dashboard and global variables (the browser's template service)."""
    ms = round(req.interval.total_seconds() * 1000)
    sql = sql.replace("$__interval_ms", str(ms)).replace("${__interval_ms}", str(ms))
    sql = sql.replace("$__interval", _format_interval(req.interval)).replace(
        "${__interval}", _format_interval(req.interval)
    )
    epoch_ms = {"__from": req.start, "__to": req.end}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        fmt = m.group(2) or m.group(5)
        if name in epoch_ms:
            return str(int(epoch_ms[name].timestamp() * 1000))
        if name not in req.variables:
            return m.group(0)  # not a variable: Grafana leaves it (macros are the backend's)
        value = req.variables[name]
        if fmt == "sqlstring":
            return _sqlstring(value)
        if fmt in ("raw", "csv"):
            return value if isinstance(value, str) else ",".join(value)
        if fmt is not None:
            raise MacroError(f"format {fmt!r} is not implemented by this helper")
        if name in req.multi or not isinstance(value, str):
            return _sqlstring(value)
        return value.replace("'", "''")

    return _VARIABLE.sub(sub, sql)


def expand_macros(sql: str, req: Request) -> str:
    """Pass 2: the PostgreSQL data source's macros (backend)."""
    start, end = req.start.astimezone(UTC), req.end.astimezone(UTC)

    def evaluate(name: str, args: list[str]) -> str:
        needs_column = ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter")
        if name in needs_column and not args[0]:
            raise MacroError(f"missing time column argument for macro {name}")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339nano(start)}' AND '{rfc3339nano(end)}'"
        if name == "__timeFrom":
            return f"'{rfc3339nano(start)}'"
        if name == "__timeTo":
            return f"'{rfc3339nano(end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise MacroError(f"macro {name} needs time column and interval and optional fill value")
            seconds = _parse_interval(args[1])
            if req.timescaledb:
                group = f"time_bucket('{seconds:.3f}s',{args[0]})"
            else:
                group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
        if name == "__unixEpochFrom":
            return str(int(start.timestamp()))
        if name == "__unixEpochTo":
            return str(int(end.timestamp()))
        if name == "__unixEpochNanoFilter":
            lo, hi = int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)
            return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
        if name == "__unixEpochNanoFrom":
            return str(int(start.timestamp() * 1e9))
        if name == "__unixEpochNanoTo":
            return str(int(end.timestamp() * 1e9))
        raise MacroError(f"unknown macro {name!r}")

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "__timeGroup" and sql[m.end() : m.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility rule
        return evaluate(name, [a.strip() for a in m.group(2).split(",")])

    return _MACRO.sub(sub, sql)


def expand(sql: str, req: Request) -> str:
    """Both passes, in Grafana's order."""
    return expand_macros(interpolate_variables(sql, req), req)
