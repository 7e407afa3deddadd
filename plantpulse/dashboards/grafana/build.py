"""The four dashboards, built with grafana-foundation-sdk's typed builders.

``build_dashboards(view, settings)`` returns SDK ``Dashboard`` models: plant overview, asset
trends, alarm management, KPI trends. All SQL comes from ``queries`` and ``kpi_sql``; this
module only arranges panels, units, colours and variables. Colours follow the high-performance
HMI idea (ISA-101) where Grafana allows it: neutral when normal, colour for what is abnormal.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import piechart, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import piechart as pm

from plantpulse.alerts import SEVERITIES
from plantpulse.dashboards.grafana import kpi_sql, queries
from plantpulse.dashboards.grafana.config import Flavor
from plantpulse.dashboards.grafana.plant import PlantView
from plantpulse.dashboards.grafana.sdk import (
    PLUGIN,
    Format,
    SqlAnnotationTargetBuilder,
    SqlQueryBuilder,
    register,
)
from plantpulse.dashboards.grafana.sqltext import inline_table

TAG = "plantpulse"
NEUTRAL = "#8e8e8e"
SEVERITY_COLOURS = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue"}
STATE_COLOURS = {
    "unacknowledged-active": "red",
    "acknowledged-active": "orange",
    "unacknowledged-cleared": "yellow",
    "shelved": NEUTRAL,
}
VERDICT_COLOURS = {
    "acceptable": "green",
    "manageable": "yellow",
    "over-demanding": "orange",
    "unacceptable": "red",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """What the generator is told besides the plant: data source, flavor, uids."""

    datasource_uid: str = "plantpulse"
    flavor: Flavor = "plain"
    uid_prefix: str = "plantpulse"

    @property
    def datasource(self) -> dm.DataSourceRef:
        return dm.DataSourceRef(type_val=PLUGIN, uid=self.datasource_uid)


@dataclass
class _Ids:
    """Panel ids, unique within a dashboard (annotations and links refer to panels by id)."""

    n: int = 0

    def __next__(self) -> int:
        self.n += 1
        return self.n


def build_dashboards(view: PlantView, settings: Settings) -> list[dm.Dashboard]:
    register()
    return [
        overview(view, settings),
        asset_trends(view, settings),
        alarm_management(view, settings),
        kpi_trends(view, settings),
    ]


# -- helpers ---------------------------------------------------------------------------------


def _query(settings: Settings, sql: str, fmt: Format = "table", ref: str = "A") -> SqlQueryBuilder:
    return SqlQueryBuilder().ref_id(ref).raw_sql(sql).format(fmt).datasource(settings.datasource)


def _dashboard(settings: Settings, key: str, title: str, view: PlantView) -> db.Dashboard:
    return (
        db.Dashboard(f"{view.site} · {title}")
        .uid(f"{settings.uid_prefix}-{key}")
        .tags([TAG])
        .timezone("browser")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("PlantPulse")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )


def _prop(key: str, value: object) -> dm.DynamicConfigValue:
    """One field-override property (``unit``, ``color``, ``custom.lineWidth``, ...)."""
    return dm.DynamicConfigValue(id_val=key, value=value)


def _fixed(colour: str) -> dm.DynamicConfigValue:
    return _prop("color", {"mode": "fixed", "fixedColor": colour})


def _dashed(colour: str) -> list[dm.DynamicConfigValue]:
    """A thin dashed reference line: limits, setpoints, targets."""
    style = cb.LineStyle().fill("dash").dash([6, 4]).build()
    return [_fixed(colour), _prop("custom.lineStyle", style), _prop("custom.lineWidth", 1)]


def _colour_map(colours: dict[str, str]) -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                value: dm.ValueMappingResult(color=colour, index=i)
                for i, (value, colour) in enumerate(colours.items())
            }
        )
    ]


def _coloured_cells(name: str, colours: dict[str, str]) -> tuple[str, list[dm.DynamicConfigValue]]:
    return name, [
        _prop("custom.cellOptions", {"type": "color-background"}),
        _prop("mappings", _colour_map(colours)),
    ]


def _variable(
    settings: Settings, name: str, label: str, sql: str, *, multi: bool = False, hide: bool = False
) -> db.QueryVariable:
    v = (
        db.QueryVariable(name)
        .label(label)
        .query(sql)
        .datasource(settings.datasource)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.DISABLED)
    )
    if multi:
        v = (
            v.multi(True)
            .include_all(True)
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )
    if hide:
        v = v.hide(dm.VariableHide.HIDE_VARIABLE)
    return v


def _table(
    settings: Settings, ids: _Ids, title: str, sql: str, height: int, *, width: int = 24
) -> table.Panel:
    # an explicit custom field config (the SDK fills in its defaults when reading one back)
    return (
        table.Panel()
        .id(next(ids))
        .title(title)
        .datasource(settings.datasource)
        .with_target(_query(settings, sql))
        .height(height)
        .span(width)
        .align(cm.FieldTextAlignment.AUTO)
    )


# -- plant overview --------------------------------------------------------------------------


def overview(view: PlantView, settings: Settings) -> dm.Dashboard:
    """Per line: the current shift's KPIs against target and the alerts not back to normal,
    with age, severity, ISA-18.2 state and who was on shift; on top, the plant's counts."""
    ids = _Ids()
    d = (
        _dashboard(settings, "overview", "Plant overview", view)
        .description("Current shift KPIs and active alerts per line (generated by plantpulse).")
        .time("now-12h", "now")
        .refresh("1m")
        .with_row(db.Row("Alerts not back to normal (whole plant)").id(next(ids)))
    )
    for sev in reversed(SEVERITIES):
        d = d.with_panel(
            stat.Panel()
            .id(next(ids))
            .title(sev.capitalize())
            .datasource(settings.datasource)
            .with_target(_query(settings, queries.active_alert_count(sev)))
            .height(4)
            .span(6)
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .graph_mode(cm.BigValueGraphMode.NONE)
            .text_mode(cm.BigValueTextMode.VALUE)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .thresholds(
                db.ThresholdsConfig()
                .mode(dm.ThresholdsMode.ABSOLUTE)
                .steps(
                    [
                        dm.Threshold(value=None, color=NEUTRAL),
                        dm.Threshold(value=1, color=SEVERITY_COLOURS[sev]),
                    ]
                )
            )
        )
    for line in view.lines:
        d = d.with_row(db.Row(f"Line {line}").id(next(ids)))
        d = d.with_panel(_kpi_tiles(settings, ids, line))
        d = d.with_panel(
            _table(settings, ids, f"Active alerts · {line}", queries.active_alerts(view, line), 8)
            .override_by_name("Age", [_prop("unit", "s")])
            .override_by_name(*_coloured_cells("Severity", SEVERITY_COLOURS))
            .override_by_name(*_coloured_cells("State", STATE_COLOURS))
            .no_value("no active alerts")
        )
    return d.build()


def _kpi_tiles(settings: Settings, ids: _Ids, line: str) -> stat.Panel:
    """One tile per KPI; thresholds per tile come from the row (Grafana's "Rows to fields")."""
    mappings: list[dict[str, object]] = [
        {"fieldName": "kpi", "handlerKey": "field.name"},
        {"fieldName": "value", "handlerKey": "field.value"},
    ]
    mappings += [
        {"fieldName": col, "handlerKey": "threshold1", "handlerArguments": {"threshold": {"color": colour}}}
        for col, colour in kpi_sql.TILE_STEPS
    ]
    return (
        stat.Panel()
        .id(next(ids))
        .title(f"Current shift KPIs · {line}")
        .description("The latest shift window in the range from kpi_results; green: target met, red: missed.")
        .datasource(settings.datasource)
        .with_target(_query(settings, kpi_sql.current_shift(line)))
        .with_transformation(dm.DataTransformerConfig(id_val="rowsToFields", options={"mappings": mappings}))
        .height(5)
        .span(24)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("no KPI window in range")
    )


# -- asset trends ----------------------------------------------------------------------------


def asset_trends(view: PlantView, settings: Settings) -> dm.Dashboard:
    """Pick a line and an asset: a trend per tag with its rules' limits, alerts as regions
    coloured by severity, shift changes as markers."""
    ids = _Ids()
    lines = inline_table([("line", "text")], [(line,) for line in view.lines])
    d = (
        _dashboard(settings, "asset", "Asset trends", view)
        .description("Tag trends with rule limits, alerts and shift changes (generated by plantpulse).")
        .time("now-6h", "now")
        .refresh("1m")
        .with_variable(_variable(settings, "line", "Line", f"SELECT line FROM ({lines}) AS l"))
        .with_variable(_variable(settings, "asset", "Asset", queries.asset_variable(view)))
        .with_variable(_variable(settings, "tag", "Tag", queries.TAG_VARIABLE, multi=True, hide=True))
    )
    for sev in reversed(SEVERITIES):
        d = d.annotation(
            db.AnnotationQuery()
            .name(f"Alerts: {sev}")
            .datasource(settings.datasource)
            .enable(True)
            .icon_color(SEVERITY_COLOURS[sev])
            .target(SqlAnnotationTargetBuilder(queries.alert_annotations(sev)))
        )
    d = d.annotation(
        db.AnnotationQuery()
        .name("Shift changes")
        .datasource(settings.datasource)
        .enable(True)
        .icon_color(NEUTRAL)
        .target(SqlAnnotationTargetBuilder(queries.shift_changes(view)))
    )
    d = d.with_panel(
        _table(settings, ids, "Alerts on $asset", queries.ASSET_ALERTS, 7)
        .override_by_name("Active for", [_prop("unit", "s")])
        .override_by_name(*_coloured_cells("Severity", SEVERITY_COLOURS))
        .no_value("no alerts in range")
    )
    return d.with_panel(_trend(view, settings, ids)).build()


def _trend(view: PlantView, settings: Settings, ids: _Ids) -> timeseries.Panel:
    p = (
        timeseries.Panel()
        .id(next(ids))
        .title("$tag")
        .datasource(settings.datasource)
        .with_target(_query(settings, queries.tag_series(view, settings.flavor), "time_series"))
        .repeat("tag")
        .repeat_direction("h")
        .max_per_row(2)
        .height(8)
        .span(12)
        .line_width(2)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(True)
        .legend(
            cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM)
        )
        .override_by_name("mean", [_fixed("blue")])
        .override_by_regexp("^(min|max)$", [_fixed("blue"), _prop("custom.lineWidth", 0)])
        .override_by_name("max", [_prop("custom.fillBelowTo", "min"), _prop("custom.fillOpacity", 15)])
        .override_by_regexp(": (low|high)$", _dashed("red"))
        .override_by_regexp(": setpoint$", _dashed(NEUTRAL))
    )
    for lim in view.limits:
        if lim.low is not None and lim.high is not None:  # a band: shade it faintly
            p = p.override_by_name(
                f"{lim.rule}: high",
                [_prop("custom.fillBelowTo", f"{lim.rule}: low"), _prop("custom.fillOpacity", 5)],
            )
    return p


# -- alarm management ------------------------------------------------------------------------


def alarm_management(view: PlantView, settings: Settings) -> dm.Dashboard:
    """ISA-18.2 / EEMUA 191 figures per operator position from the alerts table."""
    ids = _Ids()
    positions = inline_table([("position", "text")], [(p,) for p in view.positions])
    eemua = (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dm.Threshold(value=None, color="green"),  # 0-1 per 10 min: acceptable
                dm.Threshold(value=2, color="yellow"),  # 2: manageable
                dm.Threshold(value=3, color="orange"),  # 3-10: over-demanding
                dm.Threshold(value=queries.FLOOD + 1, color="red"),  # > 10: flood, unacceptable
            ]
        )
    )
    d = (
        _dashboard(settings, "alarms", "Alarm management (ISA-18.2 / EEMUA 191)", view)
        .description("Alarm load, floods, bad actors and acknowledgement per operator position.")
        .time("now-7d", "now")
        .refresh("5m")
        .with_variable(
            _variable(
                settings,
                "position",
                "Operator position",
                f"SELECT position FROM ({positions}) AS p",
                multi=True,
            )
        )
        .with_row(db.Row("Alarm load").id(next(ids)))
        .with_panel(
            timeseries.Panel()
            .id(next(ids))
            .title("Alarms per 10 minutes per operator position")
            .description(
                "Bands: EEMUA 191 (green acceptable, yellow manageable, orange over-demanding, red flood)."
            )
            .datasource(settings.datasource)
            .with_target(_query(settings, queries.alarm_rate(view), "time_series"))
            .height(8)
            .span(24)
            .draw_style(cm.GraphDrawStyle.BARS)
            .fill_opacity(60)
            .thresholds(eemua)
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED_AND_AREA)
            )
        )
        .with_panel(
            _table(settings, ids, "Alarm load per operator position", queries.alarm_load(view), 6)
            .override_by_name("Flood share", [_prop("unit", "percentunit")])
            .override_by_name("Per 10 min (avg)", [_prop("decimals", 2)])
            .override_by_name(*_coloured_cells("EEMUA 191", VERDICT_COLOURS))
        )
        .with_row(db.Row("Bad actors").id(next(ids)))
        .with_panel(
            _table(settings, ids, "Top 10 alarms", queries.bad_actors(view), 9, width=16).override_by_regexp(
                "^(Share|Cumulative share)$", [_prop("unit", "percentunit")]
            )
        )
        .with_panel(
            piechart.Panel()
            .id(next(ids))
            .title("Priority mix")
            .datasource(settings.datasource)
            .with_target(_query(settings, queries.priority_mix(view)))
            .height(9)
            .span(8)
            .pie_type(pm.PieChartType.DONUT)
            .hide_from(cb.HideSeriesConfig().legend(False).tooltip(False).viz(False))
            .reduce_options(cb.ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("/^Alarms$/"))
            .override_by_name("Severity", [_prop("mappings", _colour_map(SEVERITY_COLOURS))])
        )
        .with_row(db.Row("Acknowledgement").id(next(ids)))
        .with_panel(
            _table(settings, ids, "Time to acknowledge and to clear", queries.ack_times(view), 6)
            .override_by_regexp("(median|p90)$", [_prop("unit", "s")])
            .override_by_name("Answered after 48 h", [_prop("unit", "percentunit")])
        )
    )
    return d.build()


# -- KPI trends ------------------------------------------------------------------------------


def kpi_trends(view: PlantView, settings: Settings) -> dm.Dashboard:
    """A KPI per shift (or hour, day, week) and per crew, from kpi_results."""
    ids = _Ids()
    windows = inline_table([("kind", "text")], [(w,) for w in kpi_sql.WINDOW_KINDS])
    d = (
        _dashboard(settings, "kpi", "KPI trends by shift and crew", view)
        .description("KPI windows stored by plantpulse (kpi_results), per shift and crew.")
        .time("now-30d", "now")
        .refresh("5m")
        .with_variable(_variable(settings, "kpi", "KPI", kpi_sql.KPI_VARIABLE))
        .with_variable(_variable(settings, "asset", "Asset", kpi_sql.KPI_ASSET_VARIABLE, multi=True))
        .with_variable(_variable(settings, "window", "Window", f"SELECT kind FROM ({windows}) AS w"))
        .with_variable(_variable(settings, "crew", "Crew", kpi_sql.CREW_VARIABLE, multi=True))
        .with_panel(
            timeseries.Panel()
            .id(next(ids))
            .title("$kpi per $window")
            .datasource(settings.datasource)
            .with_target(_query(settings, kpi_sql.TREND, "time_series"))
            .height(9)
            .span(24)
            .show_points(cm.VisibilityMode.ALWAYS)
            .override_by_name("target", [*_dashed(NEUTRAL), _prop("custom.showPoints", "never")])
        )
        .with_panel(
            _table(settings, ids, "$kpi by crew", kpi_sql.BY_CREW, 7)
            .override_by_name("Met share", [_prop("unit", "percentunit")])
            .override_by_name("Coverage", [_prop("unit", "percentunit")])
        )
        .with_panel(
            _table(settings, ids, "$kpi windows", kpi_sql.SCORECARDS, 10)
            .override_by_name("Coverage", [_prop("unit", "percentunit")])
            .override_by_name(*_coloured_cells("Met", {"true": "green", "false": "red"}))
        )
    )
    return d.build()
