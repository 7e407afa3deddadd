"""``plantpulse kpi report`` formats and filters, alert counts from the plant's rules over a file,
and one clear line (exit 1) for every expected mistake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plantpulse.cli import main

CASES = Path(__file__).parent / "cases"


def _case(name: str, tmp: Path) -> Path:
    for f in (CASES / name).iterdir():
        shutil.copy(f, tmp / f.name)
    return tmp


def _report(tmp: Path, *extra: str) -> list[str]:
    return ["kpi", "report", "-c", str(tmp / "plant.yaml"), "--data", str(tmp / "samples.csv"), *extra]


def test_formats_and_asset_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _case("rollup_ratio_of_sums", tmp_path)
    span = ["--from", "2026-01-05 08:00", "--to", "2026-01-05 09:00", "--by", "hour"]
    assert main(_report(d, *span, "--format", "jsonl", "--asset", "l1")) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["asset"], r["kpi"], r["numerator"], r["denominator"]) for r in rows] == [
        ("l1", "fpy", 100.0, 102.0),
        ("l1", "avail", 5400.0, 7200.0),
    ]
    assert rows[0]["start"] == "2026-01-05T08:00:00.000Z" and rows[0]["rollup"] is True
    assert main(_report(d, *span, "--format", "table", "--asset", "l1/*")) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["WINDOW", "ASSET", "KPI", "VALUE"]
    assert table[1].split()[:4] == ["2026-01-05T08:00+00:00", "l1/w1", "fpy", "99.00%"]
    assert len(table) == 5
    assert main(_report(d, *span, "--format", "html")) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!doctype html>") and page.count("<tr>") == 11 and "<td>98.04%</td>" in page


def test_misses_and_warnings_are_marked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _case("planned_breaks", tmp_path)
    kpis = d / "kpis.yaml"
    kpis.write_text(
        kpis.read_text(encoding="utf-8").replace(
            "  - id: oee\n", '  - id: oee\n    target: ">= 70%"\n    warning: "90%"\n'
        ),
        encoding="utf-8",
    )
    span = ["--from", "2026-01-05 06:00", "--to", "2026-01-05 22:00"]
    assert main(_report(d, *span, "--format", "jsonl")) == 0
    oee = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"oee"' in x]
    assert [(r["window"], r["status"], r["met"], r["target"]) for r in oee] == [
        ("2026-01-05 early", "missed", False, ">= 70%"),
        ("2026-01-05 late", "warning", True, ">= 70%"),
    ]
    assert main(_report(d, *span, "--format", "html")) == 0
    page = capsys.readouterr().out
    assert '<tr class="missed">' in page and '<tr class="warning">' in page


def test_alert_counts_from_the_rules_over_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _case("partial_coverage", tmp_path)
    (d / "rules.yaml").write_text(
        "rules: [{id: hot, tag: line1/*/temp, above: 65, severity: high}]\n", encoding="utf-8"
    )
    (d / "plant.yaml").write_text(
        (d / "plant.yaml").read_text(encoding="utf-8") + "rules: [rules.yaml]\n", encoding="utf-8"
    )
    (d / "kpis.yaml").write_text(
        "kpis:\n  - {id: hot, kind: alert_count, assets: line1/*, rules: [hot], windows: [hour]}\n",
        encoding="utf-8",
    )
    span = ["--from", "2026-01-05 08:00", "--to", "2026-01-05 10:00", "--by", "hour"]
    assert main(_report(d, *span, "--format", "csv")) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    # 70 from 08:45 raises once (it stays above 65 until the bad sample; bad data clears nothing)
    # line1/w2 has no alert but a tag: it is counted too (0)
    assert [r.split(",")[4:7] for r in rows] == [
        ["line1/w1", "hot", "1.0"],
        ["line1/w2", "hot", "0.0"],
        ["line1", "hot", "1.0"],
        ["*", "hot", "1.0"],
        ["line1/w1", "hot", "0.0"],
        ["line1/w2", "hot", "0.0"],
        ["line1", "hot", "0.0"],
        ["*", "hot", "0.0"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday", "--to", "2026-01-05"], "invalid time 'yesterday'"),
        (["--from", "2026-01-05 10:00", "--to", "2026-01-05 09:00"], "--to must be after --from"),
        (["--from", "2026-01-05", "--to", "2026-01-05", "--by", "shift"], "--by shift needs shifts"),
    ],
)
def test_bad_input_is_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _case("counter_resets_wraps", tmp_path)
    with pytest.raises(SystemExit) as e:
        main(_report(d, *args))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_data_file_and_no_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _case("counter_resets_wraps", tmp_path)
    args = ["kpi", "report", "-c", str(d / "plant.yaml"), "--from", "2026-01-05", "--to", "2026-01-05"]
    assert main([*args, "--data", str(d / "nope.csv")]) == 1
    assert capsys.readouterr().err == f"{d / 'nope.csv'}:1:1: no such data file\n"
    with pytest.raises(SystemExit) as e:
        main(["trace", "-c", str(d / "plant.yaml"), "--asset", "line1", "--data", str(d / "samples.csv")])
    assert "no parameter tags declared" in str(e.value)


def test_trace_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _case("counter_resets_wraps", tmp_path)
    (d / "kpis.yaml").write_text(
        "parameters: ['line1/*/made']\n" + (d / "kpis.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    args = ["trace", "-c", str(d / "plant.yaml"), "--asset", "line1", "--data", str(d / "samples.csv")]
    assert main([*args, "--from", "2026-01-05 08:00", "--to", "2026-01-05 09:00", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "at,tag,asset,old,new,on_shift",
        "2026-01-05T08:15:00.000Z,line1/w1/made,line1/w1,100.0,140.0,",
        "2026-01-05T08:30:00.000Z,line1/w1/made,line1/w1,140.0,10.0,",
        "2026-01-05T08:45:00.000Z,line1/w1/made,line1/w1,10.0,50.0,",
    ]
    assert main([*args, "--since", "30m", "--to", "2026-01-05 09:00"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and table[1].startswith("2026-01-05 08:30:00 UTC  line1/w1/made")  # from 08:30 on
