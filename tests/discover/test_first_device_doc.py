"""The guide's files are valid as written: the scenario, the rule and the push addresses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.scenario import Scenario

DOC = Path(__file__).parents[2] / "docs" / "first-device.md"


def blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guides_scenario_rule_and_notifications_are_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks()
    scenario = next(b for b in found if b.startswith("name: first-device"))
    assert Scenario.model_validate(yaml.safe_load(scenario)).protocol_of("weld02") == "modbus"
    rule = next(b for b in found if b.startswith("rules:"))
    (tmp_path / "weld.yaml").write_text(rule, encoding="utf-8")
    [loaded] = load_rule_files([tmp_path / "weld.yaml"])
    assert (loaded.id, loaded.tag) == ("weld-current-high", "line1/weld*/current")
    pushes = next(b for b in found if b.startswith("notifications:"))
    monkeypatch.setenv("NTFY_TOPIC", "plantpulse-7f3a9c2e")
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load("first-device.md", text=pushes, interpolate_env=True))
    assert [u.get_secret_value() for u in plant.notifications.urls] == ["ntfys://ntfy.sh/plantpulse-7f3a9c2e"]
