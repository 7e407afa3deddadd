"""docs/operations.md and its sample alert rules hold to what /metrics exports: every metric is
documented, the rule file is well formed and uses only exported metrics. With promtool
installed (``$PROMTOOL`` or on PATH) the rule file is also checked and unit-tested by
Prometheus' own tool (tests/observe/plantpulse-alerts.test.yml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_metrics import exposition, full_vitals

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus" / "plantpulse-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        out += group["rules"]
    return out


def exported() -> set[str]:
    """Every series name /metrics can show (histograms with their _bucket/_sum/_count)."""
    names = set()
    for family in text_string_to_metric_families(exposition(full_vitals())):
        names |= {s.name for s in family.samples} | {family.name}
    return names


def test_the_rule_file_is_well_formed() -> None:
    found = rules()
    assert len({r["alert"] for r in found}) == len(found), "alert names are unique"
    for r in found:
        assert set(r) <= RULE_KEYS and {"alert", "expr", "labels", "annotations"} <= set(r), r
        assert str(r["alert"]).startswith("Plantpulse"), r["alert"]
        assert r["labels"] in ({"severity": "critical"}, {"severity": "warning"}), r["alert"]
        assert set(r["annotations"]) == {"summary", "description"}, r["alert"]  # type: ignore[arg-type]


def test_every_metric_the_rules_use_is_exported() -> None:
    used = {m for r in rules() for m in re.findall(r"\bplantpulse_[a-z_]+", str(r["expr"]))}
    assert used, "the rules use plantpulse metrics"
    assert used - exported() == set()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (set $PROMTOOL or put it on PATH)")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    assert PROMTOOL is not None
    for args in (
        ["check", "rules", str(RULES)],
        ["test", "rules", str(Path(__file__).with_name("plantpulse-alerts.test.yml"))],
    ):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_exported_metric_is_documented() -> None:
    exported = set()
    for f in text_string_to_metric_families(exposition(full_vitals())):
        exported |= {f.name} if f.type == "histogram" else {s.name for s in f.samples}
    documented = set(re.findall(r"`(plantpulse_[a-z_]+)`", OPERATIONS.read_text(encoding="utf-8")))
    assert {n for n in exported if n.startswith("plantpulse_")} - documented == set()
