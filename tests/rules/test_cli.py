"""``plantpulse rules check | test | backtest`` through cli.main, with golden cases as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plantpulse.cli import main

CASES = Path(__file__).parent / "cases"
CHECK = sorted((CASES / "check").glob("*.bad.yaml"))
BACKTEST = sorted(p for p in (CASES / "backtest").iterdir() if p.is_dir())


@pytest.mark.parametrize("bad", CHECK, ids=lambda p: p.name)
def test_check_golden(bad: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bad.parent)
    assert main(["rules", "check", bad.name]) == 1
    expected = bad.with_name(bad.name.removesuffix(".bad.yaml") + ".expected").read_text(encoding="utf-8")
    assert capsys.readouterr().err == expected


def test_check_ok_and_directories(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(CASES / "backtest")]) == 0
    assert capsys.readouterr().out == "ok: 4 rules in 2 files\n"


def test_check_reports_every_file_together(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CASES / "check")
    assert main(["rules", "check", "keys.bad.yaml", "duplicate_a.bad.yaml", "missing.yaml"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("duplicate_a.bad.yaml:6:5:")
    assert "keys.bad.yaml:5:5: rule typo: unknown key 'severty'" in err
    assert err[-1] == "missing.yaml:1:1: cannot read file: No such file or directory"


@pytest.mark.parametrize("case", BACKTEST, ids=lambda p: p.name)
def test_backtest_golden(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rules", "backtest", "--rules", str(case / "rules.yaml"), "--data", str(case / "data.csv")])
    assert code == 0
    out, err = capsys.readouterr()
    got = [json.loads(line) for line in out.splitlines()]
    want = [json.loads(line) for line in (case / "expected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == want
    assert "alerts/hour" in err


def test_backtest_parquet_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    case = CASES / "backtest" / "weld"
    pq.write_table(pacsv.read_csv(case / "data.csv"), tmp_path / "data.parquet")
    rules = str(case / "rules.yaml")
    assert main(["rules", "backtest", "--rules", rules, "--data", str(tmp_path / "data.parquet")]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    want = [json.loads(line) for line in (case / "expected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == want
    assert (
        main(["rules", "backtest", "--rules", rules, "--data", str(case / "data.csv"), "--format", "table"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["RAISED_AT", "CLEARED_AT", "RULE"]
    assert "2026-01-01T08:00:07.000Z  -" in lines[2]


def test_backtest_bad_data_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.csv"
    data.write_text("ts,tag,value\nyesterday,a/x,1\n", encoding="utf-8")
    rules = str(CASES / "backtest" / "weld" / "rules.yaml")
    assert main(["rules", "backtest", "--rules", rules, "--data", str(data)]) == 1
    assert "invalid timestamp 'yesterday'" in capsys.readouterr().err


def test_rules_test_pass_and_fail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(CASES / "ruletest" / "passing.test.yaml")]) == 0
    assert "ok: 1 test file passed" in capsys.readouterr().out
    assert main(["rules", "test", str(CASES / "ruletest" / "failing.test.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  expects the alert one second too early" in out
    assert "  - weld-current-deviation line1/weld01/current raised +2s cleared active value 110" in out
    assert "  + weld-current-deviation line1/weld01/current raised +3s cleared active value 110" in out
