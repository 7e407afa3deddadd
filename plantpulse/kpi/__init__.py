"""KPIs from process data: definitions, windows, live upkeep, reports, alarm KPIs, parameter trace.

    kset  = load_kpi_files(paths, team=plant.team, rule_ids=ids)   # YAML, FILE:LINE:COL problems
    plan  = KpiPlan(kset, Roster(plant.team, plant.site.timezone))
    state = KpiState(plan, tags, start=t0)                          # live: per micro-batch
    results = state.process(batch, alerts=raises(events))           # closed windows -> KpiResult
    results = compute(plan, tags, batch, start=t0, end=t1)          # batch: the same state, once

See docs/kpis.md. Everything here is pure (no I/O, no clock) except ``cli``.
"""

from plantpulse.kpi.alarms import AlarmFigures, alarm_kpis
from plantpulse.kpi.batch import compute
from plantpulse.kpi.calendar import Calendar, Window
from plantpulse.kpi.loader import load_kpi_files
from plantpulse.kpi.model import Kpi, KpiSet
from plantpulse.kpi.plan import KpiPlan
from plantpulse.kpi.results import AlertMark, KpiResult
from plantpulse.kpi.state import KpiState, raises
from plantpulse.kpi.trace import ParamChange, ParamTracker, trace, with_on_shift

__all__ = [
    "AlarmFigures",
    "AlertMark",
    "Calendar",
    "Kpi",
    "KpiPlan",
    "KpiResult",
    "KpiSet",
    "KpiState",
    "ParamChange",
    "ParamTracker",
    "Window",
    "alarm_kpis",
    "compute",
    "load_kpi_files",
    "raises",
    "trace",
    "with_on_shift",
]
