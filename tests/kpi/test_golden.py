"""Golden KPI cases as data: ``cases/<name>/`` holds plant.yaml, kpis.yaml, samples.csv, case.yaml
(the report's --from, --to, --by) and expected.csv, computed by hand (the reasoning is in the
comments of case.yaml). ``plantpulse kpi report --data`` must print exactly those rows; only the
columns expected.csv names are compared (a cell ``?`` is not), numbers to 1e-12 relative."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
import yaml

from plantpulse.cli import main

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())


def _same(want: str, got: str) -> bool:
    if want in (got, "?"):  # "?" in expected.csv: not compared
        return True
    try:
        return math.isclose(float(want), float(got), rel_tol=1e-12, abs_tol=1e-12)
    except ValueError:
        return False


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = yaml.safe_load((case / "case.yaml").read_text(encoding="utf-8"))
    args = ["kpi", "report", "-c", str(case / "plant.yaml"), "--data", str(case / "samples.csv")]
    args += ["--from", spec["from"], "--to", spec["to"], "--by", spec["by"], "--format", "csv"]
    assert main(args) == 0
    got = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    with open(case / "expected.csv", encoding="utf-8", newline="") as fh:
        want = list(csv.DictReader(fh))
    assert len(got) == len(want), [(r["window"], r["asset"], r["kpi"]) for r in got]
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        bad = {k: (v, g[k]) for k, v in w.items() if not _same(v, g[k])}
        assert not bad, f"row {i + 2} of expected.csv ({w['window']} {w['asset']} {w['kpi']}): {bad}"
