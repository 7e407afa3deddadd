"""Which alerts, and how they are written out: one query and one record shape for the HTTP API
(``GET /api/alerts``) and ``plantpulse alerts list | show | export``.

    query = parse_query([("since", "24h"), ("state", "active")], now, max_limit=1000)  # QueryError
    async for alert in select(store, query, now): ...   # the store a page at a time
    alert_record(alert, now)                             # JSON-able, ISO-8601 times (+ *_ns)

Times given are ISO-8601 (a date, or a date and time with an offset or ``Z``; without an offset
UTC) or a duration before ``now`` (``24h``, ``7d``, ``1h30m``). Times written are ISO-8601 UTC
with milliseconds and ``Z``, as everywhere plantpulse prints one; every such field also comes
as ``<name>_ns``, the exact Unix time in nanoseconds, for programs.

States (``state``, several allowed, any of them selects an alert) are the ISA-18.2 states of
``AlertState`` at ``now`` (``normal``, ``unacknowledged-active``, ``acknowledged-active``,
``unacknowledged-cleared``, ``shelved``), or a group by one fact: ``active`` / ``cleared``
(cleared_at unset / set), ``unacknowledged`` / ``acknowledged`` (acked_at unset / set), whether
shelved or not. ``asset`` is an asset name (that asset and every asset below it) or a glob in
the rules' grammar (``line1/weld0*``: the assets it matches and everything below them).

Every problem is a ``QueryError`` whose text is one line meant for the user (an HTTP 400 body,
a command's error line): never a Python message.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plantpulse.alerts import Alert, AlertState, JournalEntry
from plantpulse.rules.globcheck import glob_problem
from plantpulse.rules.model import glob_regex, is_glob
from plantpulse.store.base import Store
from plantpulse.timefmt import NS_PER_S, iso_ms, parse_duration

__all__ = [
    "CSV_FIELDS",
    "GROUPS",
    "STATES",
    "AlertQuery",
    "QueryError",
    "alert_record",
    "journal_record",
    "parse_asset",
    "parse_limit",
    "parse_query",
    "parse_states",
    "parse_time",
    "select",
]

STATES: tuple[str, ...] = tuple(s.value for s in AlertState)
GROUPS: tuple[str, ...] = ("active", "cleared", "unacknowledged", "acknowledged")
_ACTIVE_ONLY = frozenset({"active", AlertState.UNACK_ACTIVE.value, AlertState.ACK_ACTIVE.value})
"""States only an uncleared alert can be in (the store filters those itself)."""
_TIME_FIELDS = ("raised_at", "cleared_at", "acked_at", "shelved_until")
_MAX_NS = (1 << 63) - 1


class QueryError(ValueError):
    """A query parameter or option the user got wrong; ``str()`` is the one line to show."""


@dataclass(frozen=True)
class AlertQuery:
    """Alerts raised in [since, until) of ``rule`` under ``asset`` in any of ``states``."""

    since: int | None = None
    until: int | None = None
    states: frozenset[str] = frozenset()
    rule: str | None = None
    asset: str | None = None
    limit: int | None = None
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = glob_regex(self.asset) if self.asset is not None and is_glob(self.asset) else None
        object.__setattr__(self, "_pattern", pattern)

    @property
    def subtree(self) -> str | None:
        """The part of ``asset`` the store can select by itself: the segments before a glob."""
        if self.asset is None or not is_glob(self.asset):
            return self.asset
        literal: list[str] = []
        for segment in self.asset.split("/"):
            if is_glob(segment):
                break
            literal.append(segment)
        return "/".join(literal) or None

    def matches(self, alert: Alert, now: int) -> bool:
        """What the store could not check: the asset glob and the states."""
        if self._pattern is not None and not _under(self._pattern, alert.asset):
            return False
        return not self.states or bool(self.states & _facts(alert, now))


def _under(pattern: re.Pattern[str], asset: str) -> bool:
    """``asset`` or one of its ancestors matches ``pattern``."""
    parts = asset.split("/")
    return any(pattern.match("/".join(parts[:n])) for n in range(len(parts), 0, -1))


def _facts(alert: Alert, now: int) -> set[str]:
    return {
        alert.state(now).value,
        "active" if alert.cleared_at is None else "cleared",
        "unacknowledged" if alert.acked_at is None else "acknowledged",
    }


# -- parsing ----------------------------------------------------------------------------------


def parse_time(text: str, now: int, what: str = "time") -> int:
    """ISO-8601, or a duration before ``now`` -> Unix ns (module docstring)."""
    s = text.strip()
    if not s:
        raise QueryError(f"{what}: empty; write an ISO-8601 time (2026-12-01T08:00:00Z) or a duration (24h)")
    if s[0].isdigit() and s[-1].isalpha() and s[-1] not in "Zz":
        try:
            ns = now - parse_duration(s)
        except ValueError as e:
            raise QueryError(f"{what}: {e}") from None
    else:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise QueryError(
                f"{what}: {_shown(s)} is not a time; write ISO-8601 (2026-12-01T08:00:00Z, 2026-12-01,"
                " 2026-12-01T16:00+08:00) or a duration before now (90m, 24h, 7d)"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ns = (int(dt.timestamp()) * NS_PER_S + dt.microsecond * 1000) if dt.year >= 1970 else -1
    if not 0 <= ns <= _MAX_NS:
        raise QueryError(f"{what}: {_shown(s)} is out of range (1970-01-01 to 2262-04-11)")
    return ns


def parse_states(values: Iterable[str], what: str = "state") -> frozenset[str]:
    """``["active,shelved", "normal"]`` -> the states named (comma lists and repeats alike)."""
    out: set[str] = set()
    for value in values:
        for name in (n.strip().lower() for n in value.split(",")):
            if name not in STATES and name not in GROUPS:
                known = ", ".join((*GROUPS, *STATES))
                raise QueryError(f"{what}: unknown state {_shown(name)} (one of: {known})")
            out.add(name)
    return frozenset(out)


def parse_limit(text: str, most: int | None, what: str = "limit") -> int:
    """A whole number from 1 (to ``most``)."""
    s = text.strip()
    n = int(s) if s.isdigit() and len(s) <= 18 else -1
    if not 1 <= n <= (most if most is not None else _MAX_NS):
        bound = f"from 1 to {most}" if most is not None else "of at least 1"
        raise QueryError(f"{what}: expected a whole number {bound}, got {_shown(s)}")
    return n


def parse_asset(text: str, what: str = "asset") -> str:
    """An asset name or glob, checked (a glob that can never match is an error)."""
    s = text.strip().strip("/")
    if not s:
        raise QueryError(
            f"{what}: empty; write an asset such as line1/weld01, or a glob such as line1/weld0*"
        )
    if is_glob(s) and (problem := glob_problem(s)) is not None:
        raise QueryError(f"{what}: invalid pattern {_shown(s)}: {problem}")
    return s


def _bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes"):
        return True
    if t in ("0", "false", "no"):
        return False
    raise QueryError(f"{name}: expected true or false, got {_shown(text)}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


_PARAMS = ("since", "until", "state", "rule", "asset", "limit")
_ALIASES = {"start": "since", "end": "until"}
"""Earlier names of the API (``active`` too): kept, and refused together with the new one."""


def parse_query(
    items: Sequence[tuple[str, str]],
    now: int,
    *,
    max_limit: int | None,
    default_limit: int | None = None,
    prefix: str = "",
) -> AlertQuery:
    """An ``AlertQuery`` from (name, value) pairs (``since until state rule asset limit``;
    ``start end active`` as older names); unknown or repeated names are errors. Messages name
    a parameter as ``prefix + name`` (the command line says ``--since``)."""
    seen: dict[str, str] = {}
    states: list[str] = []
    for raw_name, value in items:
        name = _ALIASES.get(raw_name, raw_name)
        if name not in _PARAMS and name != "active":
            known = ", ".join(_PARAMS)
            raise QueryError(f"unknown query parameter {_shown(raw_name)} (known: {known})")
        if name == "state":
            states.append(value)
            continue
        if name in seen:
            twice = raw_name if seen[name] == raw_name else f"{seen[name]} and {raw_name}"
            raise QueryError(f"{twice}: given twice; give it once")
        seen[name] = raw_name
        if name == "active":
            states.append("active" if _bool(prefix + raw_name, value) else "cleared")
    given = {_ALIASES.get(k, k): v for k, v in items if k != "state"}
    limit = default_limit
    if "limit" in given:
        limit = parse_limit(given["limit"], max_limit, prefix + "limit")
    asset = parse_asset(given["asset"], prefix + "asset") if "asset" in given else None
    rule = given.get("rule")
    if rule is not None and not rule.strip():
        raise QueryError(f"{prefix}rule: empty; give a rule id")
    query = AlertQuery(
        since=parse_time(given["since"], now, prefix + "since") if "since" in given else None,
        until=parse_time(given["until"], now, prefix + "until") if "until" in given else None,
        states=parse_states(states, prefix + "state"),
        rule=rule.strip() if rule is not None else None,
        asset=asset,
        limit=limit,
    )
    if query.since is not None and query.until is not None and query.until <= query.since:
        raise QueryError(f"{prefix}until must be later than {prefix}since")
    return query


# -- reading ----------------------------------------------------------------------------------


async def select(store: Store, query: AlertQuery, now: int, *, page: int = 500) -> AsyncIterator[Alert]:
    """The alerts of ``query``, newest first, fetched ``page`` at a time (keyset paging: memory
    stays one page however many there are); states and asset globs are checked here."""
    active_only = bool(query.states) and query.states <= _ACTIVE_ONLY
    left = query.limit
    cursor: tuple[int, str] | None = None
    while True:
        batch = await store.alerts(
            query.since, query.until, rule=query.rule, asset=query.subtree,
            active_only=active_only, limit=page, before=cursor,
        )  # fmt: skip
        for alert in batch:
            if query.matches(alert, now):
                yield alert
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
        if len(batch) < page:
            return
        cursor = (batch[-1].raised_at, batch[-1].id)


# -- writing ----------------------------------------------------------------------------------


def _iso(ns: int | None) -> str | None:
    return None if ns is None else iso_ms(ns)


def alert_record(alert: Alert, now: int) -> dict[str, Any]:
    """The alert as the API returns it and ``alerts ... --format jsonl`` prints it."""
    out: dict[str, Any] = {
        "id": alert.id,
        "rule": alert.rule,
        "tag": alert.tag,
        "asset": alert.asset,
        "severity": alert.severity,
        "state": alert.state(now).value,
        "message": alert.message,
        "value": alert.value if math.isfinite(alert.value) else None,
        "raised_at": _iso(alert.raised_at),
        "cleared_at": _iso(alert.cleared_at),
        "acked_at": _iso(alert.acked_at),
        "acked_by": alert.acked_by,
        "ack_comment": alert.ack_comment,
        "shelved_until": _iso(alert.shelved_until),
        "shelve_reason": alert.shelve_reason,
        "notify": alert.notify,
        "on_shift": alert.on_shift,
        "rule_version": alert.rule_version,
    }
    for name in _TIME_FIELDS:
        out[f"{name}_ns"] = getattr(alert, name)
    return out


def journal_record(entry: JournalEntry) -> dict[str, Any]:
    """One journal line; a time in its detail (a shelve's ``until``) written the same way."""
    detail = dict(entry.detail)
    until = detail.get("until")
    if isinstance(until, int) and not isinstance(until, bool):
        detail["until"], detail["until_ns"] = iso_ms(until), until
    return {
        "alert_id": entry.alert_id,
        "at": iso_ms(entry.at),
        "action": entry.action,
        "actor": entry.actor,
        "detail": detail,
        "at_ns": entry.at,
    }


CSV_FIELDS = (
    "id", "raised_at", "cleared_at", "state", "severity", "rule", "tag", "asset", "value", "message",
    "acked_at", "acked_by", "ack_comment", "shelved_until", "shelve_reason", "notify", "on_shift",
    "rule_version",
)  # fmt: skip
"""The columns of ``--format csv``: keys of ``alert_record`` (times ISO-8601; ``on_shift`` as JSON)."""
