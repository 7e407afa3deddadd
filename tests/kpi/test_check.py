"""``plantpulse kpi check`` and ``plantpulse check -c`` over KPI files: every problem at
FILE:LINE:COL, golden cases as data (``check/<name>.bad.yaml`` + ``.expected``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plantpulse.cli import main
from tests.kpi.helpers import KPIS, PLANT

SOURCE = """\
sources:
  - {kind: mqtt, name: line, host: 127.0.0.1, subscriptions: [{topic: "l/+/+", tag: "l/{1}/{2}"}]}
"""

CHECK = Path(__file__).parent / "check"
BAD = sorted(p for p in CHECK.glob("*.bad.yaml") if p.name != "team.bad.yaml")


@pytest.mark.parametrize("bad", BAD, ids=lambda p: p.name)
def test_check_golden(bad: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CHECK)
    assert main(["kpi", "check", bad.name]) == 1
    expected = bad.with_name(bad.name.removesuffix(".bad.yaml") + ".expected").read_text(encoding="utf-8")
    assert capsys.readouterr().err == expected


def test_team_names_are_checked_with_the_plant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CHECK)
    assert main(["kpi", "check", "team.bad.yaml"]) == 0  # alone: names cannot be checked
    assert capsys.readouterr().out == "ok: 3 KPIs in 1 file\n"
    assert main(["kpi", "check", "team.bad.yaml", "-c", "plant.yaml"]) == 1
    assert capsys.readouterr().err == (CHECK / "team.expected").read_text(encoding="utf-8")


def _plant(tmp: Path, kpis: str) -> Path:
    (tmp / "kpis").mkdir()
    (tmp / "kpis" / "weld.yaml").write_text(kpis, encoding="utf-8")
    (tmp / "rules.yaml").write_text(
        "rules: [{id: weld-current, tag: l/*/current, above: 1, severity: high}]\n", encoding="utf-8"
    )
    (tmp / "plant.yaml").write_text(
        PLANT + SOURCE + "rules: [rules.yaml]\nkpis: [kpis/*.yaml]\n", encoding="utf-8"
    )
    return tmp / "plant.yaml"


def test_plant_check_covers_kpi_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = _plant(tmp_path, KPIS)
    assert main(["check", "-c", str(plant)]) == 0
    assert capsys.readouterr().out.endswith("1 rules in 1 files, 11 KPIs in 1 files\n")
    bad = KPIS.replace("notify: weld-quality", "notify: weld-qualty").replace('["weld-*"]', '["spark-*"]')
    (tmp_path / "kpis" / "weld.yaml").write_text(bad, encoding="utf-8")
    assert main(["check", "-c", str(plant)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].endswith("weld.yaml:15:5: kpi fpy: unknown policy 'weld-qualty'")
    assert err[1].endswith("weld.yaml:82:13: kpi alarms: no rule id matches 'spark-*'")


def test_plant_kpi_glob_must_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plant.yaml").write_text("kpis: [nowhere/*.yaml]\n", encoding="utf-8")
    assert main(["check", "-c", str(tmp_path / "plant.yaml")]) == 1
    assert "plant.yaml:1:8: kpis: no KPI file matches 'nowhere/*.yaml'" in capsys.readouterr().err


def test_check_reports_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("keys.bad.yaml", "semantics.bad.yaml"):
        shutil.copy(CHECK / name, tmp_path / name)
    missing = tmp_path / "missing.yaml"
    assert (
        main(
            [
                "kpi",
                "check",
                str(tmp_path / "keys.bad.yaml"),
                str(tmp_path / "semantics.bad.yaml"),
                str(missing),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "keys.bad.yaml:6:5: kpi fpy: unknown key 'totl'" in err
    assert "semantics.bad.yaml:43:5: kpi oee: unknown kpi 'nowhere'" in err
    assert f"{missing}:1:1: cannot read file: No such file or directory" in err
