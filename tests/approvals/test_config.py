"""The approvals: section: off by default, names cross-checked against the team at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantpulse.config import StoreConfig, load_config
from plantpulse.errors import ConfigError
from tests.approvals.helpers import edit, make_plant


def test_off_is_the_default_and_can_be_written(tmp_path: Path) -> None:
    path = make_plant(tmp_path, StoreConfig(url=f"sqlite:///{tmp_path / 'p.db'}"))
    assert load_config(path).plant.approvals is not None
    text = path.read_text(encoding="utf-8")
    head = text[: text.index("approvals:")]
    for off in ("approvals: off\n", "approvals: 'off'\n", ""):
        path.write_text(head + off, encoding="utf-8")
        assert load_config(path).plant.approvals is None
    path.write_text(head + "approvals: on\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"approvals: .*write the chains"):
        load_config(path)


def test_unknown_roles_unheld_roles_and_uncovered_files_are_problems(tmp_path: Path) -> None:
    path = make_plant(tmp_path, StoreConfig(url=f"sqlite:///{tmp_path / 'p.db'}"))
    edit(
        path,
        "levels: [quality_engineer, team_lead, workshop_director]",
        "levels: [quality_enginer, team_lead]",
    )
    edit(path, "escalate: {after: 1d, to: [workshop_director]}", "escalate: {after: 1d, to: [nobody]}")
    edit(path, "    - files: [kpis/*.yaml]", "    - files: [kpi/*.yaml]")
    edit(path, "  emergency: {roles: [workshop_director]}", "  emergency: {roles: [boss]}")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert [str(p).removeprefix(f"{path}:") for p in e.value.problems] == [
        "17:3: approvals: kpis/alarms.yaml matches no chain: every rule and KPI file needs one",
        "19:16: approvals: unknown role 'quality_enginer'",
        "21:34: approvals: 'nobody' is neither a role nor a person",
        "24:23: approvals: unknown role 'boss'",
    ]
