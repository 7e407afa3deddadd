"""Every panel and variable that reads ``kpi_results``, and the one place that names its columns.

The table is the KPI issue's (issue 10: one row per closed window); the dashboards are written
against this contract::

    kpi_results(kpi text, asset text, window_kind text /* shift|hour|day|week */,
                window_start timestamptz, window_end timestamptz, value double precision,
                numerator double precision, denominator double precision, coverage double precision,
                partial boolean, crew text, on_shift jsonb, target double precision,
                direction text /* '>=' or '<=' */, met boolean, computed_at timestamptz,
                PRIMARY KEY (kpi, asset, window_kind, window_start))

Every query starts from the CTE ``kr`` that ``source()`` builds from ``TABLE`` and ``COLUMNS``,
so renaming the table or a column when the migration lands is one edit here, and the queries
below keep their canonical names. ``NOT MATERIALIZED`` lets PostgreSQL inline it.
"""

from __future__ import annotations

from plantpulse.dashboards.grafana.queries import ASSET, T_FROM, T_TO, on_shift_text
from plantpulse.dashboards.grafana.sqltext import literal

TABLE = "kpi_results"
COLUMNS: dict[str, str] = {
    name: name
    for name in (
        "kpi",
        "asset",
        "window_kind",
        "window_start",
        "window_end",
        "value",
        "numerator",
        "denominator",
        "coverage",
        "partial",
        "crew",
        "on_shift",
        "target",
        "direction",
        "met",
        "computed_at",
    )
}
"""Canonical name used below -> column of ``TABLE`` (identity today)."""

KPI = "${kpi:sqlstring}"
WINDOW = "${window:sqlstring}"
CREW = "${crew:sqlstring}"
WINDOW_KINDS = ("shift", "hour", "day", "week")


def source() -> str:
    cols = ", ".join(col if col == name else f"{col} AS {name}" for name, col in COLUMNS.items())
    return f"kr AS NOT MATERIALIZED (SELECT {cols} FROM {TABLE})"


# -- variables -------------------------------------------------------------------------------

KPI_VARIABLE = f"WITH {source()} SELECT DISTINCT kpi FROM kr ORDER BY kpi"
KPI_ASSET_VARIABLE = f"WITH {source()} SELECT DISTINCT asset FROM kr WHERE kpi = {KPI} ORDER BY asset"
NO_CREW = "(none)"
"""How windows without a crew (hours, days, weeks) appear in the crew filter and the tables."""
_CREW = f"coalesce(crew, {literal(NO_CREW)})"
CREW_VARIABLE = f"WITH {source()} SELECT DISTINCT {_CREW} AS crew FROM kr ORDER BY 1"
_IN_CREWS = f"{_CREW} IN ({CREW})"

# -- overview --------------------------------------------------------------------------------

THRESHOLD_FLOOR = -1e300
"""The base step of a KPI tile's thresholds (Grafana treats the first step as -infinity)."""
TILE_STEPS: tuple[tuple[str, str], ...] = (
    ("miss_base", "red"),
    ("met_base", "green"),
    ("met_from", "green"),
    ("miss_above", "red"),
)
"""The threshold columns of ``current_shift`` with their colours, in the order Grafana adds the
steps (field order): each row sets one base and one step."""


def current_shift(line: str) -> str:
    """The line's KPIs for the latest shift window in the range, one row per KPI, shaped for
    Grafana's "Rows to fields" transformation: ``kpi`` names the tile, ``value`` is shown, and
    two of the four threshold columns are set per row so the tile is green when the target is
    met and red when it is not, whichever the direction: ``>=`` KPIs get a red base and a green
    step at the target; ``<=`` KPIs a green base and a red step just above the target (a value
    exactly at a ``<=`` target is met)."""
    return f"""\
WITH {source()}
SELECT kpi, value,
  CASE WHEN direction = '>=' THEN {THRESHOLD_FLOOR:g} END AS miss_base,
  CASE WHEN direction = '<=' THEN {THRESHOLD_FLOOR:g} END AS met_base,
  CASE WHEN direction = '>=' THEN target END AS met_from,
  CASE WHEN direction = '<=' THEN target + greatest(abs(target), 1) * 1e-9 END AS miss_above
FROM (
  SELECT DISTINCT ON (kpi) kpi, value, target, direction FROM kr
  WHERE asset = {literal(line)} AND window_kind = 'shift'
    AND window_start <= {T_TO} AND window_end > {T_FROM}
  ORDER BY kpi, window_start DESC
) latest
ORDER BY kpi"""


# -- trends ----------------------------------------------------------------------------------

TREND = f"""\
WITH {source()}
SELECT window_start AS time, asset AS metric, value
FROM kr
WHERE kpi = {KPI} AND asset IN ({ASSET}) AND window_kind = {WINDOW} AND $__timeFilter(window_start)
UNION ALL
SELECT window_start, 'target', max(target)
FROM kr
WHERE kpi = {KPI} AND asset IN ({ASSET}) AND window_kind = {WINDOW} AND $__timeFilter(window_start)
GROUP BY window_start
ORDER BY 1, 2"""
"""The KPI per window for each chosen asset, and its target (time series, long format)."""

BY_CREW = f"""\
WITH {source()}
SELECT asset AS "Asset", {_CREW} AS "Crew", count(*) AS "Windows",
  CASE WHEN sum(denominator) > 0 THEN sum(numerator) / sum(denominator) ELSE avg(value) END AS "Value",
  max(target) AS "Target",
  avg(met::int)::float8 AS "Met share",
  count(*) FILTER (WHERE partial) AS "Partial",
  avg(coverage) AS "Coverage"
FROM kr
WHERE kpi = {KPI} AND asset IN ({ASSET}) AND window_kind = {WINDOW} AND {_IN_CREWS}
  AND $__timeFilter(window_start)
GROUP BY 1, 2 ORDER BY 1, 2"""
"""Per crew over the range: a ratio KPI as the ratio of sums (never an average of ratios),
others as the mean of the windows; the share of windows that met the target."""

SCORECARDS = f"""\
WITH {source()}
SELECT window_start AS "Start", window_end AS "End", asset AS "Asset", {_CREW} AS "Crew", value AS "Value",
  target AS "Target", direction AS "Direction", met AS "Met", partial AS "Partial", coverage AS "Coverage",
  {on_shift_text("kr.on_shift")} AS "On shift"
FROM kr
WHERE kpi = {KPI} AND asset IN ({ASSET}) AND window_kind = {WINDOW} AND {_IN_CREWS}
  AND $__timeFilter(window_start)
ORDER BY window_start DESC, asset"""
"""Every window of the KPI in the range, newest first, with who was on shift."""
