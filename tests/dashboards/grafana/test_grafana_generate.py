"""``plantpulse dashboards generate``: files, provisioning, determinism, SDK round trip, config.

No database is needed here: the flavor is given (``--flavor``) or follows
``store.timescale.mode: off``; the queries themselves are run in test_grafana_sql.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models import dashboard as dm
from grafana_seed import RULES, write_plant

from plantpulse.cli import main
from plantpulse.config import load_config
from plantpulse.dashboards.grafana.plant import Limit, plant_view
from plantpulse.dashboards.grafana.sdk import SqlAnnotationTarget, SqlQuery, dashboard_from_json, to_json
from plantpulse.rules.loader import load_rules_text

STORE = "postgresql://plantpulse:st0re-secret@db.plant.local:5432/plant"


def generate(plant: Path, out: Path, *extra: str) -> int:
    return main(["dashboards", "generate", "-c", str(plant), "--out", str(out), *extra])


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_generate_writes_dashboards_and_provisioning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = write_plant(tmp_path, STORE, "grafana: {datasource: {user: pp$reader}, flavor: timescale}\n")
    assert generate(plant, tmp_path / "a") == 0
    out = capsys.readouterr().out
    assert "4 dashboards for timescale (as asked); data source pp$reader@db.plant.local:5432/plant" in out
    written = files(tmp_path / "a")
    assert sorted(written) == [
        "dashboards/plantpulse-alarms.json",
        "dashboards/plantpulse-asset.json",
        "dashboards/plantpulse-kpi.json",
        "dashboards/plantpulse-overview.json",
        "provisioning/dashboards/plantpulse.yaml",
        "provisioning/datasources/plantpulse.yaml",
    ]
    assert not any(b"st0re-secret" in text for text in written.values())

    # the same plant gives the same bytes: regenerating never churns a git diff or a provisioner
    assert generate(plant, tmp_path / "b") == 0
    assert files(tmp_path / "b") == written

    ds = yaml.safe_load(written["provisioning/datasources/plantpulse.yaml"])["datasources"][0]
    assert ds == {
        "uid": "plantpulse",
        "name": "PlantPulse",
        "type": "grafana-postgresql-datasource",
        "access": "proxy",
        "url": "db.plant.local:5432",
        "user": "pp$$reader",  # Grafana expands $ in provisioning files: a literal one is doubled
        "jsonData": {"database": "plant", "sslmode": "disable", "timescaledb": True},
        "editable": False,
        "secureJsonData": {"password": "$PLANTPULSE_PG_PASSWORD"},
    }
    provider = yaml.safe_load(written["provisioning/dashboards/plantpulse.yaml"])["providers"][0]
    assert provider["folderUid"] == "plantpulse" and provider["type"] == "file"
    assert provider["options"] == {"path": "/var/lib/grafana/dashboards/plantpulse"}

    asset = json.loads(written["dashboards/plantpulse-asset.json"])
    assert "time_bucket(" in asset["panels"][1]["targets"][0]["rawSql"]
    assert {p["datasource"]["uid"] for p in asset["panels"]} == {"plantpulse"}
    assert [a["name"] for a in asset["annotations"]["list"]] == [
        "Alerts: critical", "Alerts: high", "Alerts: medium", "Alerts: low", "Shift changes",
    ]  # fmt: skip
    assert [a["iconColor"] for a in asset["annotations"]["list"]] == [
        "red",
        "orange",
        "yellow",
        "blue",
        "#8e8e8e",
    ]


def test_plain_flavor_follows_the_store_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = write_plant(tmp_path, STORE)
    plant.write_text(
        plant.read_text(encoding="utf-8").replace(
            f'url: "{STORE}"', f'url: "{STORE}", timescale: {{mode: "off"}}'
        ),
        encoding="utf-8",
    )
    assert generate(plant, tmp_path / "out") == 0
    assert "for plain (store.timescale.mode is off)" in capsys.readouterr().out
    sql = json.loads((tmp_path / "out/dashboards/plantpulse-asset.json").read_text(encoding="utf-8"))
    trend = sql["panels"][1]["targets"][0]["rawSql"]
    assert "date_bin(" in trend and "time_bucket(" not in trend


def test_dashboards_round_trip_through_the_sdk_models(tmp_path: Path) -> None:
    plant = write_plant(tmp_path, STORE)
    assert generate(plant, tmp_path / "out", "--flavor", "plain") == 0
    for path in sorted((tmp_path / "out" / "dashboards").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        model = dashboard_from_json(data)
        assert to_json(model) == data, path.name  # JSON -> model -> JSON
        targets = [t for p in model.panels or [] if isinstance(p, dm.Panel) for t in p.targets or []]
        assert targets and all(isinstance(t, SqlQuery) and t.raw_sql for t in targets)
        for annotation in (
            model.annotations.list_val if model.annotations and model.annotations.list_val else []
        ):
            assert isinstance(annotation.target, SqlAnnotationTarget) and annotation.target.raw_sql


def test_the_sdk_alone_types_annotation_targets_for_grafana_annotations_only(tmp_path: Path) -> None:
    """Why sdk.dashboard_from_json exists: the SDK's AnnotationTarget keeps no SQL."""
    plant = write_plant(tmp_path, STORE)
    assert generate(plant, tmp_path / "out", "--flavor", "plain") == 0
    data = json.loads((tmp_path / "out/dashboards/plantpulse-asset.json").read_text(encoding="utf-8"))
    plain = to_json(dm.Dashboard.from_json(data))
    assert "rawSql" not in json.dumps(plain["annotations"])


def test_plant_view_lines_assets_positions_limits(tmp_path: Path) -> None:
    plant = write_plant(tmp_path, STORE)
    loaded = load_config(plant)
    view = plant_view(loaded.plant, load_rules_text(RULES))
    assert view.lines == ("line1", "line2")
    assert view.assets["line1"] == ("line1", "line1/weld01")
    assert view.assets["line2"] == ("line2", "cell-9", "line2/press01")
    assert view.position_roots == ("line1", "line2")
    assert view.position_exceptions == {"cell-9": "line2"}  # by path it would be nobody's
    assert view.positions == ("line1", "line2", "(unassigned)")
    assert view.limits == (
        Limit("cur-dev", "^line1/weld[^/]*/current\\Z", -5.0, 5.0, None, "{asset}/current_sp"),
        Limit("cur-fixed", "^line1/weld01/current\\Z", -3.0, 3.0, 182.0, None),
        Limit("volt-band", "^line1/weld[^/]*/voltage\\Z", 20.0, 28.0),
        Limit("force-high", "^line2/press01/force\\Z", None, 900.0),
        Limit("force-low", "^line2/[^/]*/force\\Z", 100.0, None),
    )  # the rate rule draws nothing on the value axis
    assert [s.name for s in view.shifts] == ["day", "night"]


@pytest.mark.parametrize(
    ("grafana", "problem"),
    [
        ("grafana: {folder: {uid: 'no spaces'}}", "grafana.folder.uid: 'no spaces' is not a Grafana uid"),
        ("grafana: {url: grafana.local}", "grafana.url: url is Grafana's root URL"),
        ("grafana: {datasource: {url: 'postgresql://db/x'}}", "grafana.datasource.url: url is host:port"),
        ("grafana: {dashbords: x}", "grafana: unknown key 'dashbords'"),
    ],
)
def test_check_reports_grafana_problems_at_their_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grafana: str, problem: str
) -> None:
    plant = write_plant(tmp_path, STORE, grafana + "\n")
    assert main(["check", "-c", str(plant)]) == 1
    err = capsys.readouterr().err
    line = len(plant.read_text(encoding="utf-8").splitlines())
    assert f"plant.yaml:{line}:" in err and problem in err, err


def test_grafana_needs_the_postgresql_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = write_plant(tmp_path, "sqlite:///plant.db", "grafana: {url: 'http://grafana:3000'}\n")
    assert main(["check", "-c", str(plant)]) == 1
    line = len(plant.read_text(encoding="utf-8").splitlines())  # the grafana: key, written last
    assert capsys.readouterr().err == (
        f"{plant}:{line}:1: grafana: Grafana reads the PostgreSQL store; store.url is not postgresql://...\n"
    )
    plant = write_plant(tmp_path, "sqlite:///plant.db")
    assert generate(plant, tmp_path / "out") == 1
    assert capsys.readouterr().err == (
        "plantpulse dashboards: Grafana reads the store through its PostgreSQL data source:"
        " store.url must be postgresql://...\n"
    )


def test_auto_flavor_with_an_unreachable_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], port: int
) -> None:
    plant = write_plant(tmp_path, f"postgresql://pp@127.0.0.1:{port}/plant")
    assert generate(plant, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"plantpulse dashboards: cannot ask the store which layout it uses (PostgreSQL at 127.0.0.1:{port}"
        " is unavailable: "
    )
    assert err.endswith("Connection refused); pass --flavor timescale|plain\n") and err.count("\n") == 1
