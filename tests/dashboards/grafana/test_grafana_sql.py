"""Every generated query runs on the real PostgreSQL, with and without TimescaleDB, and returns
the rows worked out by hand from the seed (grafana_seed).

The dashboards come from ``plantpulse dashboards generate --flavor auto`` (so the flavor is the
one the store recorded); each panel, variable and annotation query is expanded the way Grafana
would (grafana_macros, from Grafana's documentation) and run. Both layouts must give the same
rows: the time columns are compared as minutes after B.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from grafana_macros import Request, expand
from grafana_seed import B, dt, write_plant

from plantpulse.cli import main
from plantpulse.dashboards.grafana import kpi_sql

pytestmark = pytest.mark.postgres

ALL_POSITIONS = ["line1", "line2", "(unassigned)"]
SHELVED_ON_SHIFT = "operator: 张伟; team_lead: 李娜"


def minutes(v: Any) -> Any:
    """Times as minutes after B; numbers as floats; the rest as they are."""
    if isinstance(v, datetime):
        return (v - B).total_seconds() / 60
    if isinstance(v, Decimal):
        return float(v)
    return v


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(label, sql) of every panel target, variable and annotation of a dashboard."""
    for v in dashboard.get("templating", {}).get("list", []):
        yield f"variable {v['name']}", v["query"]
    for a in dashboard.get("annotations", {}).get("list", []):
        yield f"annotation {a['name']}", a["target"]["rawSql"]
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["rawSql"]


class Db:
    def __init__(self, url: str, flavor: str) -> None:
        self.url, self.flavor = url, flavor

    def run(self, sql: str, req: Request) -> list[tuple[Any, ...]]:
        return self.query(sql, req)[1]

    def query(self, sql: str, req: Request) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of the query as Grafana would send it."""
        text = expand(sql, req)
        assert "$__" not in text and "${" not in text, text
        with psycopg.connect(self.url) as conn:
            cur = conn.execute(text)
            rows = [tuple(minutes(v) for v in row) for row in cur.fetchall()]
            return [d.name for d in cur.description or []], rows


def request(
    db: Db,
    start: float,
    end: float,
    interval_s: float = 60,
    **variables: str | list[str],
) -> Request:
    return Request(
        start=dt(start),
        end=dt(end),
        interval=timedelta(seconds=interval_s),
        variables=variables,
        multi=frozenset(k for k, v in variables.items() if isinstance(v, list)) | {"tag"},
        timescaledb=db.flavor == "timescale",
    )


def epoch_to_minutes(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A ``time`` column in Unix seconds as minutes after B, like the datetimes (already converted)."""
    return [((r[0] - B.timestamp()) / 60 if r[0] > 1e9 else r[0], *r[1:]) for r in rows]


def approx_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(pytest.approx(v, rel=1e-9, abs=1e-12) if isinstance(v, float) else v for v in r) for r in rows
    ]


@pytest.fixture
def dashboards(seeded: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    plant = write_plant(tmp_path, seeded.url)
    assert main(["dashboards", "generate", "-c", str(plant), "--out", str(tmp_path / "out")]) == 0
    assert f"for {seeded.flavor} (the layout the store recorded)" in capsys.readouterr().out
    return {
        p.stem.removeprefix("plantpulse-"): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((tmp_path / "out" / "dashboards").glob("*.json"))
    }


def by_label(db: Db, dashboard: dict[str, Any], req: Request) -> dict[str, list[tuple[Any, ...]]]:
    """Run every query of the dashboard (each must succeed) and key the rows by label."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for label, sql in queries(dashboard):
        assert label not in out, f"two queries labelled {label!r}"
        out[label] = db.run(sql, req)
    return out


def test_every_query_runs_and_returns_the_expected_rows(seeded: Any, dashboards: dict[str, Any]) -> None:
    db = Db(seeded.url, seeded.flavor)
    assert sorted(dashboards) == ["alarms", "asset", "kpi", "overview"]

    # -- plant overview at B+60 min: what is not back to normal, and the current shift's KPIs
    got = by_label(db, dashboards["overview"], request(db, -780, 60))
    assert [got[s][0][0] for s in ("Critical", "High", "Medium", "Low")] == [1, 0, 2, 1]
    assert got["Current shift KPIs · line1"] == approx_rows(
        [
            ("rework-rate", 0.02, None, -1e300, None, 0.02 + 1e-9),  # <=: green base, red just above
            ("weld-fpy", 0.99, -1e300, None, 0.992, None),  # >=: red base, green from the target
        ]
    )
    assert got["Current shift KPIs · line2"] == approx_rows([("press-oee", 0.9, -1e300, None, 0.85, None)])
    # "Rows to fields" maps these columns by name: the tile's thresholds come out in this order
    tiles = next(
        sql for label, sql in queries(dashboards["overview"]) if label == "Current shift KPIs · line1"
    )
    assert db.query(tiles, request(db, -780, 60))[0] == ["kpi", "value", *(c for c, _ in kpi_sql.TILE_STEPS)]
    assert got["Active alerts · line1"] == [
        ("medium", "shelved", 3000.0, "line1/weld01", "line1/weld01/voltage", "volt-band",
         "volt-band on line1/weld01/voltage", 10.0, SHELVED_ON_SHIFT),
    ]  # fmt: skip
    assert got["Active alerts · line2"] == [
        ("critical", "unacknowledged-cleared", 2880.0, "line2/press01", "line2/press01/force", "force-high",
         "force-high on line2/press01/force", 12.0, "operator: 王强"),
        ("medium", "unacknowledged-active", 900.0, "cell-9", "cell-9/door", "cell-door",
         "cell-door on cell-9/door", 45.0, "operator: 王强"),
    ]  # fmt: skip

    # -- asset trends of line1/weld01, its current tag, 13 h before B to 1 h after
    asset = {"line": "line1", "asset": "line1/weld01", "tag": "line1/weld01/current"}
    got = by_label(db, dashboards["asset"], request(db, -780, 60, 30, **asset))
    assert got["variable line"] == [("line1",), ("line2",)]
    assert got["variable asset"] == [("line1",), ("line1/weld01",)]
    assert got["variable tag"] == [
        ("line1/weld01/current",),
        ("line1/weld01/current_sp",),
        ("line1/weld01/voltage",),
    ]
    assert got["Alerts on $asset"] == [
        (10.0, None, "medium", "line1/weld01/voltage", "volt-band", "volt-band on line1/weld01/voltage",
         3000.0, None, SHELVED_ON_SHIFT),
        (5.0, 7.0, "high", "line1/weld01/current", "cur-dev", "cur-dev on line1/weld01/current",
         120.0, "张伟", SHELVED_ON_SHIFT),
    ]  # fmt: skip
    assert got["annotation Alerts: critical"] == got["annotation Alerts: low"] == []
    assert got["annotation Alerts: high"] == [
        (5.0, 7.0, "cur-dev: cur-dev on line1/weld01/current", "high,cur-dev,line1/weld01/current")
    ]
    assert got["annotation Alerts: medium"] == [  # still open: the region runs to the range's end
        (10.0, 60.0, "volt-band: volt-band on line1/weld01/voltage", "medium,volt-band,line1/weld01/voltage")
    ]
    assert got["annotation Shift changes"] == [
        (-720.0, "night: two-crew crew A", "shift,night"),
        (0.0, "day: two-crew crew A", "shift,day"),
    ]
    assert got["$tag"] == approx_rows(expected_trend(30))
    rolled = by_label(db, dashboards["asset"], request(db, -780, 60, 60, **asset))["$tag"]
    assert rolled == approx_rows(expected_trend(60))

    # -- alarm management over the hour after B, every position
    got = by_label(db, dashboards["alarms"], request(db, 0, 60, position=ALL_POSITIONS))
    assert sorted(got["variable position"]) == sorted((p,) for p in ALL_POSITIONS)
    # $__timeGroupAlias gives epoch seconds on plain PostgreSQL, time_bucket's timestamptz with TimescaleDB
    assert epoch_to_minutes(got["Alarms per 10 minutes per operator position"]) == [
        (0.0, "line1", 1),
        (10.0, "line1", 1),
        (10.0, "line2", 2),
        (20.0, "line2", 3),
        (40.0, "line2", 12),  # 11 press jams and the cell door (cell-9 belongs to line2)
        (50.0, "(unassigned)", 1),
    ]
    load = {row[0]: row[1:] for row in got["Alarm load per operator position"]}
    assert load == {
        "line1": approx_rows([(2, 2 / 6, 1, 0.0, "acceptable")])[0],
        "line2": approx_rows([(17, 17 / 6, 12, 1 / 6, "over-demanding")])[0],
        "(unassigned)": approx_rows([(1, 1 / 6, 1, 0.0, "acceptable")])[0],
    }
    assert got["Top 10 alarms"] == approx_rows(
        [
            ("press-jam", "line2/press01/jam", "line2", 11, 0.55, 0.55, False),  # 30 s apart: not chatter
            ("force-low", "line2/press01/force", "line2", 3, 0.15, 0.70, True),  # 3 within 40 s
            ("force-high", "line2/press01/force", "line2", 2, 0.10, 0.80, False),
            ("cell-door", "cell-9/door", "line2", 1, 0.05, 0.85, False),
            ("cur-dev", "line1/weld01/current", "line1", 1, 0.05, 0.90, False),
            ("mix-hot", "line3/mixer/temp", "(unassigned)", 1, 0.05, 0.95, False),
            ("volt-band", "line1/weld01/voltage", "line1", 1, 0.05, 1.0, False),
        ]
    )
    assert got["Priority mix"] == [("critical", 2), ("high", 12), ("medium", 2), ("low", 4)]
    ack = {row[0]: row[1:] for row in got["Time to acknowledge and to clear"]}
    assert ack == {
        "line1": approx_rows([(2, 60.0, 60.0, 0.0, 1, 0, 120.0, 120.0)])[0],
        # acks 60..660 s (jams), 90, 120 x3, 49 h (door); clears 10 x3, 20 x11, 30, 480 s
        "line2": approx_rows([(17, 270.0, 630.0, 1 / 17, 1, 1, 20.0, 25.0)])[0],
        "(unassigned)": (1, None, None, 0.0, 1, 0, None, None),
    }
    one = by_label(db, dashboards["alarms"], request(db, 0, 60, position=["line1"]))
    assert [r[0] for r in one["Alarm load per operator position"]] == ["line1"]
    assert {r[1] for r in one["Alarms per 10 minutes per operator position"]} == {"line1"}

    # -- KPI trends: first-pass yield of line1 per shift, every crew
    kpi = {"kpi": "weld-fpy", "asset": ["line1"], "window": "shift", "crew": ["(none)", "A"]}
    got = by_label(db, dashboards["kpi"], request(db, -780, 60, **kpi))
    assert sorted(got["variable kpi"]) == [("press-oee",), ("rework-rate",), ("weld-fpy",)]
    assert got["variable asset"] == [("line1",)]
    assert got["variable window"] == [("shift",), ("hour",), ("day",), ("week",)]
    assert sorted(got["variable crew"]) == [("(none)",), ("A",)]
    assert got["$kpi per $window"] == approx_rows(
        [(-720.0, "line1", 0.995), (-720.0, "target", 0.992), (0.0, "line1", 0.99), (0.0, "target", 0.992)]
    )
    # a ratio KPI over a crew's shifts is the ratio of the sums: (995 + 99) / (1000 + 100)
    assert got["$kpi by crew"] == approx_rows([("line1", "A", 2, 1094 / 1100, 0.992, 0.5, 1, 0.75)])
    assert got["$kpi windows"] == approx_rows(
        [
            (0.0, 720.0, "line1", "A", 0.99, 0.992, ">=", False, True, 0.5, SHELVED_ON_SHIFT),
            (-720.0, 0.0, "line1", "A", 0.995, 0.992, ">=", True, False, 1.0, SHELVED_ON_SHIFT),
        ]
    )
    hours = by_label(
        db, dashboards["kpi"], request(db, -780, 60, **{**kpi, "window": "hour", "crew": ["(none)"]})
    )
    assert hours["$kpi by crew"] == approx_rows([("line1", "(none)", 1, 0.99, 0.992, 0.0, 0, 1.0)])


def test_intervals_of_a_minute_and_more_read_the_rollup(seeded: Any, dashboards: dict[str, Any]) -> None:
    """Change the stored 1-minute rollup behind the store's back: trends at 1-minute intervals
    show it, finer ones (read from ``samples``) do not."""
    db = Db(seeded.url, seeded.flavor)
    with psycopg.connect(db.url, autocommit=True) as conn:
        if db.flavor == "timescale":  # materialise the continuous aggregate, then edit what it stored
            conn.execute("CALL refresh_continuous_aggregate('samples_1m', NULL, NULL)")
            schema, table = conn.execute(
                "SELECT materialization_hypertable_schema, materialization_hypertable_name"
                " FROM timescaledb_information.continuous_aggregates WHERE view_name = 'samples_1m'"
            ).fetchone() or ("", "")
            conn.execute(f'UPDATE {schema}."{table}" SET max = max + 1000')
        else:
            conn.execute("UPDATE samples_1m SET max = max + 1000")
    asset = {"line": "line1", "asset": "line1/weld01", "tag": "line1/weld01/current"}
    trend = queries(dashboards["asset"])
    sql = next(q for label, q in trend if label == "$tag")
    fine = db.run(sql, request(db, -780, 60, 30, **asset))
    assert fine == approx_rows(expected_trend(30))
    coarse = db.run(sql, request(db, -780, 60, 60, **asset))
    bumped = [(t, m, v + 1000 if m == "max" else v) for t, m, v in expected_trend(60)]
    assert coarse == approx_rows(bumped)


def expected_trend(interval_s: int) -> list[tuple[Any, ...]]:
    """The current tag's trend by hand: 180..185 in every minute (10 s apart); cur-fixed is
    182 +- 3; cur-dev follows the setpoint tag (180 for 15 min, then 200, one sample a minute)."""
    rows: list[tuple[Any, ...]] = []
    per = interval_s // 10
    for j in range(180 // per):
        t = j * interval_s / 60
        values = [180.0 + k % 6 for k in range(j * per, (j + 1) * per)]
        rows += [(t, "mean", sum(values) / len(values)), (t, "min", min(values)), (t, "max", max(values))]
        rows += [
            (t, "cur-fixed: low", 179.0),
            (t, "cur-fixed: high", 185.0),
            (t, "cur-fixed: setpoint", 182.0),
        ]
        if t == int(t):  # a setpoint sample falls in this bucket
            sp = 180.0 if t < 15 else 200.0
            rows += [(t, "cur-dev: low", sp - 5), (t, "cur-dev: high", sp + 5), (t, "cur-dev: setpoint", sp)]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def test_a_plant_with_nothing_configured_still_gives_valid_sql(seeded: Any, tmp_path: Path) -> None:
    """No sources, rules, team or shifts: every inline table is empty, every query still runs."""
    plant = tmp_path / "plant.yaml"
    plant.write_text(f'store: {{url: "{seeded.url}"}}\n', encoding="utf-8")
    assert main(["dashboards", "generate", "-c", str(plant), "--out", str(tmp_path / "out")]) == 0
    db = Db(seeded.url, seeded.flavor)
    req = request(db, 0, 60, line="line1", asset="line1/weld01", tag="line1/weld01/current", position=["*"],
                  kpi="weld-fpy", window="shift", crew=["A"])  # fmt: skip
    got = {
        path.stem: by_label(db, json.loads(path.read_text(encoding="utf-8")), req)
        for path in (tmp_path / "out" / "dashboards").glob("*.json")
    }
    assert (
        got["plantpulse-asset"]["variable line"] == got["plantpulse-asset"]["annotation Shift changes"] == []
    )
    assert got["plantpulse-alarms"]["variable position"] == [("(unassigned)",)]
    assert got["plantpulse-kpi"]["variable kpi"]  # the KPI dashboard reads kpi_results, not the plant
