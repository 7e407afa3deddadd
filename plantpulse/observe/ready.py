"""Readiness, pure: a ``Vitals`` read and ``api.ready`` in, the checks and the verdict out.

Ready means the process does its job now: the pipeline is running (not restoring its state,
not stopping), the store takes writes (as the spool writer last found it), the spool backlog
is under its bound (a store that is up but cannot keep up counts as not ready too), and the
sources ``api.ready.sources`` asks for are available. Each check has a one-word ``state``
and a ``why`` in our own words; ``error`` carries text from outside (a driver's or device's
message, which may name hosts) and is shown only to callers holding the API token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from plantpulse.observe.config import ReadyConfig
from plantpulse.observe.vitals import Vitals
from plantpulse.timefmt import NS_PER_S, format_duration

__all__ = ["Check", "Readiness", "format_bytes", "readiness", "spool_bound"]

_PHASE_WHY = {
    "starting": "restoring the engine state and replaying the spool; collectors not started yet",
    "running": "collectors deliver, the engine evaluates",
    "stopping": "a stop is under way",
}


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # pipeline, store, spool, or "source <name>"
    ok: bool
    state: str
    why: str
    error: str | None = None
    numbers: Mapping[str, int | float | None] = field(default_factory=lambda: MappingProxyType({}))

    def body(self, details: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "state": self.state, "why": self.why}
        out.update(self.numbers)
        if details and self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Readiness:
    phase: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def body(self, details: bool = False) -> dict[str, Any]:
        """The JSON of ``/api/health/ready``; ``details``: the caller holds the API token."""
        return {
            "status": "ready" if self.ok else "not ready",
            "phase": self.phase,
            "failing": self.failing,
            "checks": [c.body(details) for c in self.checks],
        }


def spool_bound(v: Vitals, config: ReadyConfig) -> int:
    """``api.ready.spool_backlog``, by default a quarter of ``store.spool.max_bytes``."""
    return config.spool_backlog if config.spool_backlog is not None else v.spool_max_bytes // 4


def readiness(v: Vitals, config: ReadyConfig) -> Readiness:
    checks = [_pipeline(v), _store(v), _spool(v, config), *_sources(v, config)]
    return Readiness(v.phase, tuple(checks))


def _pipeline(v: Vitals) -> Check:
    lag = None if v.watermark is None else round((v.wall_ns - v.watermark) / 1e9, 3)
    numbers = {"watermark_lag_seconds": lag, "queue_samples": v.queue.samples if v.queue else 0}
    return Check("pipeline", v.phase == "running", v.phase, _PHASE_WHY[v.phase], numbers=numbers)


def _store(v: Vitals) -> Check:
    s = v.spool
    if s.store_available:
        return Check("store", True, "reachable", "the store takes writes")
    return Check(
        "store", False, "unreachable", "the store does not take writes; everything waits in the spool",
        error=s.last_error,
    )  # fmt: skip


def _spool(v: Vitals, config: ReadyConfig) -> Check:
    s, bound = v.spool, spool_bound(v, config)
    numbers = {
        "backlog_records": s.pending_records,
        "backlog_bytes": s.pending_bytes,
        "bound_bytes": bound,
        "refused_records": s.dropped_full,
    }
    size = f"backlog {s.pending_records} records, {format_bytes(s.pending_bytes)}"
    if s.pending_bytes > bound:
        why = f"{size}: above the bound {format_bytes(bound)}"
        return Check("spool", False, "over", why, numbers=numbers)
    return Check("spool", True, "ok", f"{size} (bound {format_bytes(bound)})", numbers=numbers)


def _sources(v: Vitals, config: ReadyConfig) -> list[Check]:
    any_up = any(s.available for s in v.sources)
    out = []
    for s in v.sources:
        held = None if s.since is None else max(0.0, v.monotonic - s.since)
        when = "" if held is None else f" for {format_duration(round(held) * NS_PER_S)}"
        if s.available:
            state, why = "available", f"available{when}"
        elif s.available is None:
            state, why = "connecting", "no data, heartbeat or failure yet"
        else:
            state, why = "unavailable", f"unavailable{when}"
        ok = {"all": bool(s.available), "any": any_up, "ignore": True}[config.sources]
        numbers = {"samples": s.samples, "for_seconds": None if held is None else round(held, 3)}
        out.append(Check(f"source {s.name}", ok, state, why, s.last_error, numbers))
    return out


def format_bytes(n: int) -> str:
    """1536 -> ``1.5 KiB``: for people (the JSON has the exact numbers)."""
    if n < 1024:
        return f"{n} B"
    size, unit = float(n), "B"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007  (the unit reached is the one printed)
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"
