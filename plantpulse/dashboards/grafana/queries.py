"""The SQL of every panel, variable and annotation except the KPI ones (``kpi_sql``).

Each function returns query text for Grafana's PostgreSQL data source: time comes in through
Grafana's macros (``$__timeFilter``, ``$__timeFrom()``, ``$__timeTo()``,
``$__timeGroupAlias``) and ``$__interval_ms``; dashboard variables as ``${name:sqlstring}``;
everything the plant config decides (assets, limits, shifts, positions) is baked in as
literals by ``sqltext``. Times shown "as of" the dashboard's end (``$__timeTo()``), never
``now()``, so moving the time picker back shows the plant as it was.

Tables read: ``tags``, ``samples``, ``samples_1m`` (docs/storage.md) and ``alerts``.
"""

from __future__ import annotations

from plantpulse.alerts import SEVERITIES
from plantpulse.dashboards.grafana.config import Flavor
from plantpulse.dashboards.grafana.plant import UNASSIGNED, PlantView, ShiftSpec, position_label
from plantpulse.dashboards.grafana.sqltext import (
    ROLLUP_FROM_MS,
    bucket,
    inline_table,
    literal,
)

T_FROM = "$__timeFrom()::timestamptz"
T_TO = "$__timeTo()::timestamptz"
TAG = "${tag:sqlstring}"
ASSET = "${asset:sqlstring}"
LINE = "${line:sqlstring}"
POSITIONS = "${position:sqlstring}"

FLOOD = 10
"""EEMUA 191 / ISA-18.2: more than 10 alarms in 10 minutes to one operator is a flood."""
EEMUA_BANDS: tuple[tuple[float, str], ...] = (
    (1, "acceptable"),
    (2, "manageable"),
    (FLOOD, "over-demanding"),
    (float("inf"), "unacceptable"),
)
"""Average alarms per 10 minutes per operator position, upper bound (inclusive) -> verdict.
EEMUA 191: < 1 per 10 min very likely acceptable, 1 per 5 min manageable (ISA-18.2: ~2 is the
maximum manageable), 1 per 2 min likely over-demanding, > 1 per minute very likely unacceptable."""


def _severity_rank(column: str) -> str:
    """1 (low) .. 4 (critical), for ordering by severity."""
    return f"array_position(ARRAY[{', '.join(literal(s) for s in SEVERITIES)}], {column})"


def _asset_of(expr: str) -> str:
    """SQL for ``plantpulse.samples.asset_of``: everything before the last ``/``, else ``''``."""
    return f"coalesce(substring({expr} from '^(.*)/[^/]*$'), '')"


def in_line(view: PlantView, line: str, column: str = "a.asset") -> str:
    """``column`` lies in ``line``'s subtree: the assets the config knows there, or by path."""
    known = ", ".join(literal(a) for a in view.line_assets(line))
    lit = literal(line)
    return f"({column} IN ({known}) OR starts_with({column}, {lit} || '/'))"


# -- variables -------------------------------------------------------------------------------


def asset_variable(view: PlantView) -> str:
    """The assets of the chosen line (the asset tree comes from the config, not the data)."""
    rows = [(asset, line) for line in view.lines for asset in view.line_assets(line)]
    table = inline_table([("asset", "text"), ("line", "text")], rows)
    return f"SELECT asset FROM ({table}) AS m WHERE line = {LINE}"


TAG_VARIABLE = f"SELECT name FROM tags WHERE asset = {ASSET} ORDER BY name"
"""The tags of the chosen asset that the store has seen (one trend panel each)."""


# -- trends ----------------------------------------------------------------------------------


def tag_series(view: PlantView, flavor: Flavor) -> str:
    """One tag's trend (mean, min, max per ``$__interval``) with its rules' limits.

    Long format (``time``, ``metric``, ``value``, sorted by time): Grafana turns each
    ``metric`` into a series. Below a 1-minute interval the raw ``samples`` are bucketed;
    from 1 minute on, the 1-minute rollup ``samples_1m`` (a continuous aggregate on
    TimescaleDB, kept by the store on plain PostgreSQL) is re-bucketed: mean = sum/count.
    PostgreSQL evaluates the constant ``$__interval_ms`` conditions once, so only one branch
    reads any rows. Limits: ``<rule>: high`` / ``: low`` (and ``: setpoint`` for deviations,
    whose band follows the setpoint tag bucket by bucket)."""
    rows = [(lim.rule, lim.pattern, lim.low, lim.high, lim.setpoint, lim.setpoint_tag) for lim in view.limits]
    rules = inline_table(
        [
            ("rule", "text"),
            ("pattern", "text"),
            ("lo", "float8"),
            ("hi", "float8"),
            ("sp_value", "float8"),
            ("sp_tag", "text"),
        ],
        rows,
    )
    raw_b = bucket(flavor, "s.ts")
    roll_b = bucket(flavor, "r.bucket")
    return f"""\
WITH lim AS (
  SELECT rule, lo, hi, sp_value, replace(sp_tag, '{{asset}}', {_asset_of(TAG)}) AS sp_tag
  FROM ({rules}) AS r
  WHERE {TAG} ~ pattern
), ids AS (
  SELECT t.id, t.name FROM tags t
  WHERE t.name = {TAG} OR t.name IN (SELECT sp_tag FROM lim)
), v AS (
  SELECT i.name, {raw_b} AS time, avg(s.value) AS avg, min(s.value) AS min, max(s.value) AS max
  FROM samples s JOIN ids i ON i.id = s.tag_id
  WHERE $__timeFilter(s.ts) AND s.quality < 2 AND $__interval_ms < {ROLLUP_FROM_MS}
  GROUP BY 1, 2
  UNION ALL
  SELECT i.name, {roll_b} AS time, sum(r.sum) / sum(r.count), min(r.min), max(r.max)
  FROM samples_1m r JOIN ids i ON i.id = r.tag_id
  WHERE $__timeFilter(r.bucket) AND $__interval_ms >= {ROLLUP_FROM_MS}
  GROUP BY 1, 2
), main AS (
  SELECT time, avg, min, max FROM v WHERE name = {TAG}
)
SELECT time, metric, value FROM (
  SELECT time, 'mean' AS metric, avg AS value FROM main
  UNION ALL SELECT time, 'min', min FROM main
  UNION ALL SELECT time, 'max', max FROM main
  UNION ALL SELECT m.time, l.rule || ': low', coalesce(l.sp_value, 0) + l.lo
    FROM main m CROSS JOIN lim l WHERE l.lo IS NOT NULL AND l.sp_tag IS NULL
  UNION ALL SELECT m.time, l.rule || ': high', coalesce(l.sp_value, 0) + l.hi
    FROM main m CROSS JOIN lim l WHERE l.hi IS NOT NULL AND l.sp_tag IS NULL
  UNION ALL SELECT m.time, l.rule || ': setpoint', l.sp_value
    FROM main m CROSS JOIN lim l WHERE l.sp_value IS NOT NULL
  UNION ALL SELECT s.time, l.rule || ': low', s.avg + l.lo FROM lim l JOIN v s ON s.name = l.sp_tag
  UNION ALL SELECT s.time, l.rule || ': high', s.avg + l.hi FROM lim l JOIN v s ON s.name = l.sp_tag
  UNION ALL SELECT s.time, l.rule || ': setpoint', s.avg FROM lim l JOIN v s ON s.name = l.sp_tag
) x
ORDER BY time, metric COLLATE "C"
"""


# -- alerts ----------------------------------------------------------------------------------


def on_shift_text(column: str) -> str:
    """An ``on_shift`` jsonb (role -> names) as ``operator: 张伟; team_lead: 李娜``."""
    return f"""\
(SELECT string_agg(r.key || ': ' || coalesce(
     (SELECT string_agg(n, ', ') FROM jsonb_array_elements_text(r.value) AS n), '(nobody)'),
   '; ' ORDER BY r.key)
 FROM jsonb_each({column}) AS r)"""


_ON_SHIFT = on_shift_text("a.on_shift")

_ACTIVE_AT_END = f"""\
a.raised_at <= {T_TO}
  AND (a.cleared_at IS NULL OR a.cleared_at > {T_TO} OR a.acked_at IS NULL OR a.acked_at > {T_TO})"""
"""Not back to normal at the dashboard's end (ISA-18.2: active, or cleared but unacknowledged)."""

_STATE_AT_END = f"""\
CASE WHEN a.shelved_until > {T_TO} THEN 'shelved'
     WHEN a.cleared_at IS NULL OR a.cleared_at > {T_TO} THEN
       CASE WHEN a.acked_at IS NULL OR a.acked_at > {T_TO}
            THEN 'unacknowledged-active' ELSE 'acknowledged-active' END
     ELSE 'unacknowledged-cleared' END"""


def active_alert_count(severity: str) -> str:
    """How many alerts of one severity are not back to normal at the dashboard's end."""
    return (
        f"SELECT count(*) AS value FROM alerts a WHERE a.severity = {literal(severity)} AND {_ACTIVE_AT_END}"
    )


def active_alerts(view: PlantView, line: str) -> str:
    """The line's alerts not back to normal, most severe and oldest first, with who was on shift."""
    rank = _severity_rank("a.severity")
    return f"""\
SELECT a.severity AS "Severity", {_STATE_AT_END} AS "State",
  extract(epoch FROM {T_TO} - a.raised_at) AS "Age",
  a.asset AS "Asset", a.tag AS "Tag", a.rule AS "Rule", a.message AS "Message",
  a.raised_at AS "Raised", {_ON_SHIFT} AS "On shift"
FROM alerts a
WHERE {_ACTIVE_AT_END} AND {in_line(view, line)}
ORDER BY {rank} DESC, a.raised_at, a.id"""


ASSET_ALERTS = f"""\
SELECT a.raised_at AS "Raised", a.cleared_at AS "Cleared", a.severity AS "Severity", a.tag AS "Tag",
  a.rule AS "Rule", a.message AS "Message",
  extract(epoch FROM coalesce(a.cleared_at, {T_TO}) - a.raised_at) AS "Active for",
  a.acked_by AS "Acknowledged by", {_ON_SHIFT} AS "On shift"
FROM alerts a
WHERE a.asset = {ASSET} AND a.raised_at <= {T_TO} AND (a.cleared_at IS NULL OR a.cleared_at >= {T_FROM})
ORDER BY a.raised_at DESC, a.id"""
"""The chosen asset's alerts that were active at some point of the range."""


def alert_annotations(severity: str) -> str:
    """One severity's alerts on the chosen asset as regions from raise to clear (open ones to the
    range's end). Grafana colours an annotation query, not a row: one query per severity."""
    return f"""\
SELECT a.raised_at AS time, coalesce(a.cleared_at, {T_TO}) AS timeend,
  a.rule || ': ' || a.message AS text, a.severity || ',' || a.rule || ',' || a.tag AS tags
FROM alerts a
WHERE a.asset = {ASSET} AND a.severity = {literal(severity)}
  AND a.raised_at <= {T_TO} AND (a.cleared_at IS NULL OR a.cleared_at >= {T_FROM})
ORDER BY a.raised_at"""


# -- shift changes ---------------------------------------------------------------------------


def _wall_to_utc(tz: str) -> str:
    """The instant of the site wall time ``w.l`` (PostgreSQL's own reading: ``w.s0``) as the
    roster reads it (``plantpulse.people.roster``): a wall time the autumn night shows twice is
    its first occurrence, where PostgreSQL takes the second; one the spring night skips is the
    instant the clock jumps (03:00), where PostgreSQL reads it with the offset before the jump."""
    offset = f"(c AT TIME ZONE {tz}) - (c AT TIME ZONE 'UTC')"
    return f"""coalesce(
    (SELECT min(c) FROM (VALUES (w.s0 - INTERVAL '1 hour'), (w.s0 - INTERVAL '30 minutes')) AS f(c)
     WHERE (c AT TIME ZONE {tz}) = w.l),
    CASE WHEN (w.s0 AT TIME ZONE {tz}) = w.l THEN w.s0 ELSE (
      SELECT min(c)
      FROM generate_series(w.s0 - ((w.s0 AT TIME ZONE {tz}) - w.l), w.s0, INTERVAL '1 minute') AS g(c)
      WHERE {offset} = (w.s0 AT TIME ZONE {tz}) - (w.s0 AT TIME ZONE 'UTC')) END)"""


def shift_changes(view: PlantView) -> str:
    """Every shift start in the range from the roster's pattern, with the crew each rotation
    puts on it: the site-local day plus the shift's start time, mapped to UTC in the site's
    zone (DST-correct). Empty when the team defines no shifts."""
    if not view.shifts:
        return "SELECT NULL::timestamptz AS time, NULL::text AS text, NULL::text AS tags WHERE FALSE"
    tz = literal(view.timezone)
    rows = ",\n    ".join(_shift_row(s) for s in view.shifts)
    crew = (
        "substr(r.pattern, (((c.day - r.start) % length(r.pattern)) + length(r.pattern))"
        " % length(r.pattern) + 1, 1)"
    )
    return f"""\
WITH s AS (
  SELECT * FROM (VALUES
    {rows}) AS v(shift, start_min, days, rot_names, rot_starts, rot_patterns)
), d AS (
  SELECT day::date AS day FROM generate_series(
    (({T_FROM}) AT TIME ZONE {tz})::date - 1, (({T_TO}) AT TIME ZONE {tz})::date, INTERVAL '1 day') AS day
), c AS (
  SELECT {_wall_to_utc(tz)} AS time, s.shift, d.day, s.rot_names, s.rot_starts, s.rot_patterns
  FROM s CROSS JOIN d
  CROSS JOIN LATERAL (SELECT d.day + make_interval(mins => s.start_min) AS l) AS w0
  CROSS JOIN LATERAL (SELECT w0.l AS l, w0.l AT TIME ZONE {tz} AS s0) AS w
  WHERE s.days IS NULL OR extract(isodow FROM d.day)::int = ANY(s.days)
)
SELECT c.time, c.shift || coalesce(': ' || (
    SELECT string_agg(r.rotation || ' crew ' || {crew}, ', ' ORDER BY r.rotation)
    FROM unnest(c.rot_names, c.rot_starts, c.rot_patterns) AS r(rotation, start, pattern)
    WHERE {crew} <> '-'), '') AS text,
  'shift,' || c.shift AS tags
FROM c
WHERE c.time >= {T_FROM} AND c.time <= {T_TO}
ORDER BY c.time"""


def _shift_row(s: ShiftSpec) -> str:
    days = "CAST(NULL AS int[])" if s.days is None else "ARRAY[" + ", ".join(map(str, s.days)) + "]::int[]"

    def array(items: list[str], sqltype: str) -> str:
        return "ARRAY[" + ", ".join(items) + f"]::{sqltype}[]"

    names = array([literal(r.rotation) for r in s.rotations], "text")
    starts = array([literal(r.start.isoformat()) for r in s.rotations], "date")
    patterns = array([literal(r.pattern) for r in s.rotations], "text")
    return f"({literal(s.name)}, {s.start}, {days}, {names}, {starts}, {patterns})"


# -- alarm management (EEMUA 191 / ISA-18.2) -------------------------------------------------


def _alarms_cte(view: PlantView) -> str:
    """``al``: the alerts raised in the range, each with its operator position."""
    roots = inline_table(
        [("root", "text"), ("position", "text")], [(r, position_label(r)) for r in view.position_roots]
    )
    exceptions = inline_table(
        [("asset", "text"), ("position", "text")], sorted(view.position_exceptions.items())
    )
    return f"""\
pos_roots AS ({roots}),
pos_exc AS ({exceptions}),
al AS (
  SELECT a.*, coalesce(
      (SELECT e.position FROM pos_exc e WHERE e.asset = a.asset),
      (SELECT r.position FROM pos_roots r
       WHERE r.root = '' OR a.asset = r.root OR starts_with(a.asset, r.root || '/')
       ORDER BY length(r.root) DESC LIMIT 1),
      {literal(UNASSIGNED)}) AS position
  FROM alerts a
  WHERE $__timeFilter(a.raised_at)
)"""


def alarm_rate(view: PlantView) -> str:
    """Alarms per 10 minutes per position (time series; Grafana fills empty intervals with 0)."""
    return f"""\
WITH {_alarms_cte(view)}
SELECT $__timeGroupAlias(raised_at, '10m', 0), position AS metric, count(*) AS value
FROM al WHERE position IN ({POSITIONS})
GROUP BY 1, 2
ORDER BY 1, 2"""


def _verdict(avg: str) -> str:
    whens = " ".join(
        f"WHEN {avg} <= {bound:g} THEN {literal(label)}"
        for bound, label in EEMUA_BANDS
        if bound != float("inf")
    )
    return f"CASE {whens} ELSE {literal(EEMUA_BANDS[-1][1])} END"


def alarm_load(view: PlantView) -> str:
    """Per position over the range: alarms, average and peak per 10 minutes, share of 10-minute
    intervals in flood (> 10), EEMUA 191's verdict on the average. Intervals run from the
    range's start in 10-minute steps (the last one may be shorter); empty ones count as 0."""
    return f"""\
WITH {_alarms_cte(view)},
iv AS (
  SELECT start
  FROM generate_series({T_FROM}, {T_TO} - INTERVAL '1 microsecond', INTERVAL '10 minutes') AS start
), p AS (
  SELECT unnest(ARRAY[{POSITIONS}]::text[]) AS position
), n AS (
  SELECT p.position, iv.start, count(al.id) AS n
  FROM p CROSS JOIN iv
  LEFT JOIN al ON al.position = p.position
    AND al.raised_at >= iv.start AND al.raised_at < iv.start + INTERVAL '10 minutes'
  GROUP BY 1, 2
)
SELECT position AS "Position", sum(n)::bigint AS "Alarms", avg(n)::float8 AS "Per 10 min (avg)",
  max(n)::bigint AS "Per 10 min (peak)", avg((n > {FLOOD})::int)::float8 AS "Flood share",
  {_verdict("avg(n)")} AS "EEMUA 191"
FROM n GROUP BY position ORDER BY position"""


def bad_actors(view: PlantView, top: int = 10) -> str:
    """The ``top`` most frequent alarms (rule on tag) with their share and cumulative share of
    all alarms in the range, and whether they chatter (ISA-18.2: three raises of the same alarm
    less than a minute apart, first to third)."""
    return f"""\
WITH {_alarms_cte(view)},
c AS (
  SELECT al.*, al.raised_at - lag(al.raised_at, 2) OVER (PARTITION BY al.rule, al.tag ORDER BY al.raised_at)
         < INTERVAL '1 minute' AS chatter
  FROM al WHERE al.position IN ({POSITIONS})
)
SELECT rule AS "Rule", tag AS "Tag", position AS "Position", count(*) AS "Alarms",
  count(*)::float8 / sum(count(*)) OVER () AS "Share",
  sum(count(*)) OVER (ORDER BY count(*) DESC, rule, tag ROWS UNBOUNDED PRECEDING)::float8
    / sum(count(*)) OVER () AS "Cumulative share",
  coalesce(bool_or(chatter), FALSE) AS "Chattering"
FROM c GROUP BY rule, tag, position
ORDER BY count(*) DESC, rule, tag
LIMIT {top}"""


def ack_times(view: PlantView) -> str:
    """Per position: time to acknowledge and to clear (median, p90, in seconds) of the alarms
    raised in the range, the share answered after 48 h (or still unanswered 48 h after the raise
    at the range's end), the unacknowledged and the cleared-unacknowledged counts."""
    ack = "extract(epoch FROM al.acked_at - al.raised_at)"
    clear = "extract(epoch FROM al.cleared_at - al.raised_at)"
    return f"""\
WITH {_alarms_cte(view)}
SELECT position AS "Position", count(*) AS "Alarms",
  percentile_cont(0.5) WITHIN GROUP (ORDER BY {ack}) AS "Ack median",
  percentile_cont(0.9) WITHIN GROUP (ORDER BY {ack}) AS "Ack p90",
  avg(CASE WHEN al.acked_at IS NOT NULL THEN al.acked_at - al.raised_at > INTERVAL '48 hours'
           ELSE {T_TO} - al.raised_at > INTERVAL '48 hours' END::int)::float8
    AS "Answered after 48 h",
  count(*) FILTER (WHERE al.acked_at IS NULL) AS "Unacknowledged",
  count(*) FILTER (WHERE al.acked_at IS NULL AND al.cleared_at IS NOT NULL) AS "Cleared unacknowledged",
  percentile_cont(0.5) WITHIN GROUP (ORDER BY {clear}) AS "Clear median",
  percentile_cont(0.9) WITHIN GROUP (ORDER BY {clear}) AS "Clear p90"
FROM al WHERE position IN ({POSITIONS})
GROUP BY position ORDER BY position"""


def priority_mix(view: PlantView) -> str:
    """Alarms per severity in the range (ISA-18.2 expects few high-priority alarms)."""
    sev = inline_table([("severity", "text"), ("rank", "int")], [(s, i) for i, s in enumerate(SEVERITIES)])
    return f"""\
WITH {_alarms_cte(view)},
sev AS ({sev})
SELECT sev.severity AS "Severity", count(al.id) AS "Alarms"
FROM sev LEFT JOIN al ON al.severity = sev.severity AND al.position IN ({POSITIONS})
GROUP BY sev.severity, sev.rank ORDER BY sev.rank DESC"""
