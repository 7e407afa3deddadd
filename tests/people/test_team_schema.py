"""The team: section: every misspelt reference is an error at its FILE:LINE:COL."""

from __future__ import annotations

import pytest
from team_fixture import PLANT, plant

from plantpulse.errors import ConfigError
from plantpulse.people.schema import TeamConfig


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        plant(text)
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_fixture_is_valid_and_config_has_a_default_team() -> None:
    p = plant()
    assert p.team.policy(None) is p.team.policies["default"]
    assert p.team.policy("nope") is None
    assert p.team.contacts("李娜", ["sms"]) == [("sms", "json://127.0.0.1:9/sms")]
    assert p.team.language_of("郑浩") == "en" and p.team.language_of("张伟") == "zh"
    assert plant("site: {timezone: UTC}\n").team == TeamConfig()


@pytest.mark.parametrize(
    ("old", "new", "needle", "what"),
    [
        ("A: [张伟, 李娜]", "A: [张伟, 李娜娜]", "A: [张伟", "unknown person '李娜娜'"),
        ('early: "AA DD CC BB"', 'early: "AA DD CC BX"', 'early: "AA', "unknown crew 'X'"),
        ('late:  "BB AA DD CC"', 'late:  "BB AA DD C"', "pattern:", "same, non-zero length"),
        ("rotation: four-crew}", "rotation: three-crew}", "three-crew", "unknown rotation 'three-crew'"),
        ("shift: office}", "shift: ofice}", "ofice", "unknown shift 'ofice'"),
        ("to: [quality_engineer]", "to: [quality_enginer]", "quality_enginer", "neither a role nor a person"),
        ("channels: [wecom]", "channels: [wechat]", "wechat", "nobody has a contact 'wechat'"),
        ("person: 陈刚, for: 李娜", "person: 陈刚, for: 李", "for: 李,", "unknown person '李'"),
    ],
)
def test_reference_errors_point_at_the_item(old: str, new: str, needle: str, what: str) -> None:
    assert old in PLANT
    text = PLANT.replace(old, new)
    found = problems(text)
    assert any(what in p for p in found), found
    assert any(p.startswith(f"plant.yaml:{line_of(text, needle)}:") for p in found if what in p), found


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ('start: "06:00", end: "14:00"', 'start: "6h", end: "14:00"', "invalid time of day"),
        ('start: "06:00", end: "14:00"', 'start: "06:00", end: "25:00"', "out of range"),
        ('"wecombot://KEYA"', '"notaurl"', "is not a URL"),
        ('"wecombot://KEYA"', '"nosuchscheme://x"', "apprise does not know"),
        (
            "from: 2026-12-01, to: 2026-12-01}",
            "from: 2026-12-02, to: 2026-12-01}",
            "'to' must be after 'from'",
        ),
        ("kind: cover, person: Anna, roles", "kind: cover, person: Anna, for: 张伟, roles", "either 'for'"),
        ("{after: 15m,", "{after: 90m,", "in order of 'after'"),
        ("repeat: 10m", "repeat: 0s", "repeat must be positive"),
        ("rotation: four-crew}", "rotation: four-crew, shift: early}", "brings its own shifts"),
        ("roles: [workshop_director], people: [郑浩]", "roles: [workshop_director]", "exactly one of"),
        ("kind: leave", "kind: holiday", "does not match any of the expected tags"),
        ("language: zh", "language: fr", "Input should be"),
        ("    hall-a: [line1]", "    hall-a: [line1]\n    line1: [hall-a]", "cycle"),
    ],
)
def test_bad_values(old: str, new: str, what: str) -> None:
    assert old in PLANT
    found = problems(PLANT.replace(old, new))
    assert any(what in p for p in found), found


def test_unknown_keys_are_errors() -> None:
    found = problems(PLANT.replace("  maintenance:\n", "  maintenence:\n"))
    assert any("unknown key 'maintenence'" in p for p in found)


def test_person_named_like_a_role_is_refused() -> None:
    found = problems(PLANT.replace("    Bob: {roles: [maintenance]}", "    operator: {roles: [maintenance]}")
                     .replace("people: [Bob]", "people: [operator]"))  # fmt: skip
    assert any("both a person and a role" in p for p in found), found


def test_templates_are_checked() -> None:
    ok = PLANT + "  templates:\n    en: {title: '{severity} {rule}'}\n"
    assert plant(ok).team.templates["en"].title == "{severity} {rule}"
    for bad, what in [("'{nope}'", "unknown field {nope}"), ("'{value.real}'", "plain fields"),
                      ("'{value:.1f}'", "fields are text"), ("'{'", "invalid template")]:  # fmt: skip
        found = problems(PLANT + f"  templates:\n    en: {{title: {bad}}}\n")
        assert any(what in p for p in found), (bad, found)


def test_every_problem_is_reported_at_once() -> None:
    text = PLANT.replace("A: [张伟, 李娜]", "A: [张伟, X1]").replace("shift: office}", "shift: ofice}")
    assert len(problems(text)) >= 2


def test_sexagesimal_yaml_times_are_minutes() -> None:
    p = plant(PLANT.replace('start: "06:00", end: "14:00"', "start: 06:00, end: 14:00"))
    assert (p.team.shifts["early"].start, p.team.shifts["early"].end) == (360, 840)


def test_documented_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime
    from pathlib import Path

    from plantpulse import yamlsrc
    from plantpulse.config import PlantConfig
    from plantpulse.people.roster import Roster

    doc = (Path(__file__).parents[2] / "docs" / "people.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    for var in ("WECOM_KEY_LINE1", "DINGTALK_TOKEN", "SMTP_PASSWORD", "FEISHU_TOKEN"):
        monkeypatch.setenv(var, "t0ken")
    monkeypatch.setenv("PLANTPULSE_ACK_SECRET", "s" * 32)
    p = yamlsrc.validate(PlantConfig, yamlsrc.load("people.md", text=example, interpolate_env=True))
    r = Roster(p.team, p.site.timezone)
    assert r.holders("line1/weld01", "operator", r.to_ns(datetime(2026, 12, 1, 23, 30))) == ["陈刚"]
