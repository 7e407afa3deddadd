"""The demo scenario's expected alerts are what the demo rules raise over its pure truth.

This pins the demo (and every scenario shipped with expected alerts) to the engine's exact
semantics without any network: the truth is what a change-only subscriber receives.
"""

from pathlib import Path

import pytest

import plantpulse
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rule_files
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.simulators.scenario import load_scenario, truth_samples

DEMO = Path(plantpulse.__file__).parent / "demo"
START = 1_767_225_600_000_000_000


@pytest.mark.parametrize("batch_size", [1_000, 50_000])
def test_demo_rules_raise_exactly_the_expected_alerts(batch_size: int) -> None:
    """The truth follows each welder's protocol (Modbus polls, Sparkplug births and deaths)."""
    scenario = load_scenario(DEMO / "weld-line.yaml")
    rules = load_rule_files([DEMO / "weld-rules.yaml"])
    tags = TagRegistry(scenario.tag_names())
    engine = Engine(rules, tags)
    samples = truth_samples(scenario, START)
    events = []
    for i in range(0, len(samples), batch_size):
        events += engine.process(SampleBatch.from_samples(tags, samples[i : i + batch_size]))
    events += engine.advance(START + scenario.duration)
    raised: dict[tuple[str, str, int], int | None] = {
        (e.rule, e.tag, e.raised_at): None for e in events if e.kind == "raised"
    }
    for e in events:
        if e.kind == "cleared":
            raised[(e.rule, e.tag, e.raised_at)] = e.at
    got = sorted(
        (rule, tag, r - START, None if c is None else c - START) for (rule, tag, r), c in raised.items()
    )
    want = sorted((a.rule, a.tag, a.raised_at, a.cleared_at) for a in scenario.expected_alerts)
    assert got == want
    assert {p: scenario.welders_on(p) for p in ("opcua", "modbus", "mqtt")} == {
        "opcua": ["weld01", "weld03"],
        "modbus": ["weld02"],
        "mqtt": ["weld04"],
    }
