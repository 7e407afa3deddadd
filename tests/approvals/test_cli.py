"""``rules propose | approve | reject | show | log`` end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from plantpulse.cli import main
from plantpulse.config import StoreConfig
from tests.approvals.helpers import edit, make_plant


def adopted(root: Path, store: StoreConfig, capsys: pytest.CaptureFixture[str]) -> tuple[Path, list[str]]:
    """The plant, ``-c plant.yaml``, and its files on disk adopted as the baseline (change #1)."""
    plant = make_plant(root, store)
    assert main(["rules", "log", "-c", str(plant)]) == 0
    capsys.readouterr()
    return plant, ["-c", str(plant)]


def tamper(store: StoreConfig, statement: str) -> None:
    """What someone with database access does: lift the append-only triggers, then write."""
    if store.url.startswith("sqlite"):
        db = sqlite3.connect(store.url.removeprefix("sqlite:///"))
        db.execute("DROP TRIGGER change_log_no_update")
        db.execute("DROP TRIGGER change_log_no_delete")
        db.execute(statement)
        db.commit()
        db.close()
    else:
        with psycopg.connect(store.url, autocommit=True) as pg:
            pg.execute("ALTER TABLE change_log DISABLE TRIGGER change_log_append_only")
            pg.execute(statement)


def run(*args: str) -> str:
    """Run a command that must be refused; return its one-line message."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("plantpulse: ")
    return msg.removeprefix("plantpulse: ")


def test_a_change_through_three_levels(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    assert main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "误报太多"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("change #2 by 吴芳 at 20")
    assert "waits for level 1 of 3 (quality_engineer): 陈工" in out
    assert "weld-current: deviation.limit 5 -> 8" in out
    assert "reason: 误报太多" in out

    assert run("rules", "approve", "2", *c, "--by", "王强") == (
        "王强 is not a quality_engineer: level 1 of 3 (quality_engineer) of change #2 needs one"
    )
    assert (
        run("rules", "approve", "#2", *c, "--by", "吴芳") == "吴芳 proposed change #2 and cannot approve it"
    )
    assert run("rules", "approve", "2", *c, "--by", "郑浩") == (
        "out of order: change #2 waits for level 1 of 3 (quality_engineer)"
        " before level 3 of 3 (workshop_director)"
    )
    assert run("rules", "approve", "2", *c, "--by", "nobody") == (
        "unknown person 'nobody': approvals are signed by people of team.people"
    )
    assert run("rules", "approve", "9", *c, "--by", "陈工") == "no change #9"
    assert main(["rules", "approve", "2", *c, "--by", "陈工", "--comment", "ok"]) == 0
    assert "change #2: approved by 陈工 (level 1 of 3 (quality_engineer))" in capsys.readouterr().out
    assert main(["rules", "approve", "2", *c, "--by", "李娜"]) == 0
    capsys.readouterr()
    assert main(["rules", "approve", "2", *c, "--by", "郑浩"]) == 0
    out = capsys.readouterr().out
    assert "live: approved by 陈工, 李娜, 郑浩" in out

    assert main(["rules", "show", "2", *c, "--diff"]) == 0
    out = capsys.readouterr().out
    assert '-    deviation: {setpoint: "{asset}/current_sp", limit: 5}' in out
    assert main(["rules", "log", *c, "--verify"]) == 0
    captured = capsys.readouterr()
    assert [line.split()[3:5] for line in captured.out.splitlines()] == [
        ["#1", "baseline"], ["#2", "proposed"], ["#2", "approved"], ["#2", "approved"],
        ["#2", "approved"], ["#2", "activated"],
    ]  # fmt: skip
    assert captured.err.startswith("change log verified: 6 records, head record 6, sha256 ")
    assert main(["rules", "log", *c, "--rule", "weld-temp"]) == 0
    assert [line.split()[4] for line in capsys.readouterr().out.splitlines()] == ["baseline"]


def test_reject_and_stale_changes(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "a"])
    edit(rules, "above: 80", "above: 85")
    main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "b"])
    for who in ("陈工", "李娜", "郑浩"):
        assert main(["rules", "approve", "3", *c, "--by", who]) == 0
    assert run("rules", "approve", "2", *c, "--by", "陈工") == (
        "change #2 was proposed against an older version of rules/weld.yaml: reject it and propose again"
    )
    assert run("rules", "reject", "2", *c, "--by", "王强", "--reason", "x") == (
        "王强 cannot reject change #2: only its proposer"
        " or a quality_engineer, team_lead, workshop_director can"
    )
    assert main(["rules", "reject", "2", *c, "--by", "吴芳", "--reason", "superseded by #3"]) == 0
    capsys.readouterr()
    assert main(["rules", "show", "2", *c]) == 0
    assert "rejected by 吴芳: superseded by #3" in capsys.readouterr().out
    assert run("rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "c") == (
        "nothing to propose: rules/weld.yaml is the live version"
    )


def test_proposals_are_checked_before_anything_is_recorded(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    other = tmp_path / "other.yaml"
    other.write_text("rules: []\n", encoding="utf-8")
    assert run("rules", "propose", str(other), *c, "--by", "吴芳", "--reason", "x") == (
        f"{other} is not a rule or KPI file of {plant} (see its rules: and kpis:)"
    )
    kpis = str(tmp_path / "kpis" / "alarms.yaml")
    assert run("rules", "propose", str(rules), kpis, *c, "--by", "吴芳", "--reason", "x").endswith(
        "have different approval chains: propose them separately"
    )
    assert run("rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", " ") == (
        "a proposal needs a reason (--reason)"
    )
    edit(rules, "above: 80", "above: [80]")
    assert main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "x"]) == 1
    assert "rules/weld.yaml:" in capsys.readouterr().err
    edit(rules, "above: [80]", "above: 90")
    assert run("rules", "propose", str(rules), *c, "--by", "李娜", "--reason", "x", "--emergency") == (
        "李娜 may not make emergency changes (approvals.emergency.roles: workshop_director)"
    )
    assert run("rules", "propose", str(rules), *c, "--by", "郑浩", "--reason", "x", "--emergency") == (
        "an emergency change may only remove rules or KPIs (approvals.emergency.changes: disable);"
        " rules/weld.yaml: weld-temp is changed"
    )


def test_an_emergency_disables_a_rule_at_once_and_is_reviewed_after(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text[: text.index("  - id: weld-temp")], encoding="utf-8")
    assert main(["rules", "propose", str(rules), *c, "--by", "郑浩", "--reason", "振荡", "--emergency"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("EMERGENCY change #2 by 郑浩")
    assert "live (emergency); review waits for level 1 of 3 (quality_engineer)" in out
    main(["rules", "log", *c])
    assert "EMERGENCY live: rules/weld.yaml" in capsys.readouterr().out


def test_an_edited_log_row_fails_verify_and_is_named(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "x"])
    main(["rules", "approve", "2", *c, "--by", "陈工"])
    assert main(["rules", "log", *c, "--verify"]) == 0
    capsys.readouterr()
    tamper(store_config, "UPDATE change_log SET actor = '李娜' WHERE seq = 3")  # who approved, rewritten
    assert main(["rules", "log", *c, "--verify"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "plantpulse: change log: record 3: edited: change #2 approved by 李娜 no longer matches its hash",
        "plantpulse: change log BROKEN: 1 problem(s) in 3 records",
    ]
    assert main(["rules", "log", *c, "--verify", "--format", "html"]) == 1
    page = capsys.readouterr().out
    assert "The chain is BROKEN" in page and "record 3: edited" in page


def test_a_deleted_newest_row_is_found_against_the_witness(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant, c = adopted(tmp_path, store_config, capsys)
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "x"])
    main(["rules", "approve", "2", *c, "--by", "陈工"])
    tamper(store_config, "DELETE FROM change_log WHERE seq = 3")
    capsys.readouterr()
    assert main(["rules", "log", *c, "--verify"]) == 1
    assert "record 3: deleted: the log ends at record 2, but record 3 (" in capsys.readouterr().err


def test_kpi_commands_evaluate_the_approved_versions(tmp_path: Path, store_config: StoreConfig) -> None:
    from plantpulse.approvals.service import approved
    from plantpulse.config import load_config

    plant = make_plant(tmp_path, store_config)
    c = ["-c", str(plant)]
    kpis = tmp_path / "kpis" / "alarms.yaml"
    rules, kset = approved(load_config(plant))  # adopts the files on disk
    assert [k.id for k in kset.kpis] == ["weld-alerts"] and kset.alarms.flood == 10
    edit(kpis, "  interval: 10m", "  interval: 10m\n  flood: 5")
    rules, kset = approved(load_config(plant))
    assert kset.alarms.flood == 10 and kset.files == ("kpis/alarms.yaml",), "an edit on disk is not approved"
    assert main(["rules", "propose", str(kpis), *c, "--by", "吴芳", "--reason", "EEMUA"]) == 0
    for who in ("陈工", "郑浩"):
        assert main(["rules", "approve", "2", *c, "--by", who]) == 0
    assert approved(load_config(plant))[1].alarms.flood == 5
    assert [r.id for r in rules] == ["weld-current", "weld-temp"]
