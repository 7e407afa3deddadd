"""Readiness is pure: Vitals and api.ready in, the checks and the verdict out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plantpulse.collectors.runner import SourceStatus
from plantpulse.observe.config import ReadyConfig
from plantpulse.observe.ready import format_bytes, readiness
from plantpulse.observe.vitals import Phase, Vitals
from plantpulse.store.spool import SpoolStats

S = 10**9
MiB = 1 << 20
NOW = 1_796_083_200 * S


def spool(available: bool = True, pending_bytes: int = 0, error: str | None = None) -> SpoolStats:
    return SpoolStats(
        store_available=available, pending_records=pending_bytes // 100, pending_bytes=pending_bytes,
        spooled=0, committed=0, skipped=0, dropped_full=0, rejected=0, outages=0, last_error=error,
    )  # fmt: skip


def source(
    name: str, available: bool | None, since: float | None = 100.0, error: str | None = None
) -> SourceStatus:
    return SourceStatus(name, f"opc.tcp://{name}:4840", available, since, error, 10, 0, 0, 0)


def vitals(phase: Phase = "running", **changes: object) -> Vitals:
    v = Vitals(
        phase=phase, wall_ns=NOW, monotonic=130.0, spool=spool(), spool_max_bytes=1024 * MiB,
        sources=(source("press", True), source("weld", True)), watermark=NOW - S // 4,
    )  # fmt: skip
    return replace(v, **changes)  # type: ignore[arg-type]


def test_all_well_is_ready_and_says_why_per_check() -> None:
    r = readiness(vitals(), ReadyConfig())
    assert r.ok and r.failing == []
    body = r.body()
    assert body["status"] == "ready" and body["phase"] == "running"
    assert [(c["name"], c["ok"], c["state"]) for c in body["checks"]] == [
        ("pipeline", True, "running"),
        ("store", True, "reachable"),
        ("spool", True, "ok"),
        ("source press", True, "available"),
        ("source weld", True, "available"),
    ]
    assert body["checks"][0]["watermark_lag_seconds"] == 0.25
    assert body["checks"][3]["why"] == "available for 30s" and body["checks"][3]["for_seconds"] == 30.0
    assert body["checks"][2]["bound_bytes"] == 256 * MiB  # a quarter of store.spool.max_bytes


@pytest.mark.parametrize("phase", ["starting", "stopping"])
def test_a_pipeline_not_running_is_not_ready(phase: Phase) -> None:
    r = readiness(vitals(phase), ReadyConfig())
    assert not r.ok and r.failing == ["pipeline"]
    assert r.body()["checks"][0]["state"] == phase


def test_a_store_down_is_named_and_its_error_shown_only_with_details() -> None:
    down = spool(available=False, error="connection to 10.0.0.7:5432 refused")
    r = readiness(vitals(spool=down), ReadyConfig())
    assert r.failing == ["store"]
    plain, detailed = r.body()["checks"][1], r.body(details=True)["checks"][1]
    assert plain["state"] == "unreachable" and "error" not in plain
    assert detailed["error"] == "connection to 10.0.0.7:5432 refused"


def test_a_spool_backlog_over_its_bound_is_not_ready() -> None:
    over = vitals(spool=spool(pending_bytes=300 * MiB))
    r = readiness(over, ReadyConfig())
    assert r.failing == ["spool"]
    assert r.body()["checks"][2]["why"] == "backlog 3145728 records, 300.0 MiB: above the bound 256.0 MiB"
    assert readiness(over, ReadyConfig(spool_backlog=512 * MiB)).ok
    assert readiness(vitals(spool=spool(pending_bytes=2 * MiB)), ReadyConfig(spool_backlog=MiB)).failing == [
        "spool"
    ]


def test_sources_as_api_ready_sources_asks() -> None:
    mixed = vitals(
        sources=(source("press", False, error="timeout"), source("weld", True), source("new", None, None))
    )
    assert readiness(mixed, ReadyConfig()).failing == ["source press", "source new"]
    assert readiness(mixed, ReadyConfig(sources="any")).ok
    assert readiness(mixed, ReadyConfig(sources="ignore")).ok
    states = [c["state"] for c in readiness(mixed, ReadyConfig(sources="ignore")).body()["checks"][3:]]
    assert states == ["unavailable", "available", "connecting"]  # still shown, only not required
    none_up = vitals(sources=(source("press", False), source("weld", None, None)))
    assert readiness(none_up, ReadyConfig(sources="any")).failing == ["source press", "source weld"]


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * MiB, 3 << 30, 5000 << 30)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB", "5000.0 GiB",
    ]  # fmt: skip
