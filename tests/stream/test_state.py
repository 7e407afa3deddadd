"""The snapshot file: what a switch of approved rules adds to it, and older files still load."""

from __future__ import annotations

import json
from pathlib import Path

from plantpulse.alerts import AlertEvent
from plantpulse.stream.state import SNAPSHOT_FILE, StateFile

ENGINE = {"version": 1, "watermark": 5, "counters": {}, "tags": {}, "rules": {}}


def test_the_ruleset_and_a_switchs_closing_events_round_trip(tmp_path: Path) -> None:
    closing = [AlertEvent("cleared", "r", "a/b/c", "high", 3, 5, 1.5, "closed at a rule change: 规则 r")]
    StateFile(tmp_path).save(ENGINE, (0, 42), {"src": 5}, 9, ruleset=7, closing=closing)
    saved = StateFile(tmp_path).load()
    assert saved is not None
    assert (saved.engine, saved.position, saved.watermarks, saved.ruleset) == (ENGINE, (0, 42), {"src": 5}, 7)
    assert saved.closing == closing


def test_a_snapshot_from_before_approvals_loads_with_neither(tmp_path: Path) -> None:
    doc = {"version": 1, "position": [0, 42], "watermarks": {}, "saved_at": 9, "engine": ENGINE}
    (tmp_path / SNAPSHOT_FILE).write_text(json.dumps(doc), encoding="utf-8")
    saved = StateFile(tmp_path).load()
    assert saved is not None and (saved.ruleset, saved.closing, saved.position) == (None, [], (0, 42))
