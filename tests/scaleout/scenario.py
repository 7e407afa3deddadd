"""The demo scenario as the scale-out tests use it: its truth, its rules, its expected alerts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import plantpulse
from plantpulse.alerts import AlertEvent
from plantpulse.rules.loader import load_rule_files
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample
from plantpulse.simulators.scenario import Scenario, load_scenario, truth_samples

DEMO = Path(plantpulse.__file__).parent / "demo"
START = 1_767_225_600_000_000_000

AlertKey = tuple[str, str, int, int | None]  # rule, tag, raised_at, cleared_at (offsets from START)


def scenario() -> Scenario:
    return load_scenario(DEMO / "weld-line.yaml")


def rules() -> list[Rule]:
    return load_rule_files([DEMO / "weld-rules.yaml"])


def truth() -> list[Sample]:
    return truth_samples(scenario(), START)


def expected() -> list[AlertKey]:
    return sorted((a.rule, a.tag, a.raised_at, a.cleared_at) for a in scenario().expected_alerts)


def alerts_of(events: Iterable[AlertEvent]) -> list[AlertKey]:
    """Raises and clears folded into alerts, by id; an event seen twice counts once."""
    out: dict[str, list[object]] = {}
    for e in events:
        a = out.setdefault(e.alert_id, [e.rule, e.tag, e.raised_at - START, None])
        if e.kind == "cleared":
            a[3] = e.at - START
    return sorted(tuple(a) for a in out.values())  # type: ignore[misc]
