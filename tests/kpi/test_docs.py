"""Every KPI file example in docs/kpis.md is valid (docs are a contract)."""

from __future__ import annotations

import re
from pathlib import Path

from plantpulse.kpi.loader import load_kpi_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "kpis.md"


def test_examples_in_the_docs_load(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    files = []
    for i, text in enumerate(
        b for b in blocks if b.lstrip().startswith(("#", "kpis:", "alarms:", "breaks:"))
    ):
        f = tmp_path / f"example{i}.yaml"
        f.write_text(text, encoding="utf-8")
        files.append(f)
    assert len(files) == 3
    kset = load_kpi_files(files)
    assert [k.id for k in kset.kpis][:5] == [
        "weld-fpy",
        "rework-rate",
        "weld-availability",
        "weld-performance",
        "weld-oee",
    ]
    assert kset.get("weld-fpy").name == {"zh": "焊接一次合格率", "en": "Weld first-pass yield"}  # type: ignore[union-attr]
    assert kset.alarms.targets.ack_median == 18 * 3600 * 10**9
    assert kset.parameters == ("line1/weld*/current_sp", "line1/weld*/recipe_*")
