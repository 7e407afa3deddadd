"""The SQL the generator bakes in, checked on PostgreSQL against the Python it mirrors: shift
changes against the roster (both DST nights), rule globs against the rules engine, literals
through Grafana's two passes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from grafana_macros import Request, expand

from plantpulse.dashboards.grafana.plant import PlantView, RotationDays, ShiftSpec
from plantpulse.dashboards.grafana.queries import shift_changes
from plantpulse.dashboards.grafana.sqltext import glob_to_regex, literal
from plantpulse.people.roster import Roster
from plantpulse.people.schema import TeamConfig
from plantpulse.rules.model import glob_regex

pytestmark = pytest.mark.postgres


# 02:30 in Berlin: skipped on 29 March 2026 (02:00 CET -> 03:00 CEST at 01:00 UTC: a shift starting
# then starts at the jump) and shown twice on 25 October (00:30 and 01:30 UTC: the first counts)
AT_0230 = {
    date(2026, 3, 29): datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    date(2026, 10, 25): datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
}


def test_shift_changes_are_the_rosters_instants_across_both_dst_nights(pg_dsn: str) -> None:
    shifts = (
        ShiftSpec("early", 2 * 60 + 30, None, (RotationDays("r", date(2026, 1, 5), "AB-"),)),
        ShiftSpec("late", 14 * 60, (1, 2, 3, 4, 5), ()),
    )
    view = PlantView("site", "Europe/Berlin", (), {}, (), {}, (), shifts)
    roster = Roster(TeamConfig(), "Europe/Berlin")
    with psycopg.connect(pg_dsn) as conn:
        for first, last in ((date(2026, 3, 27), date(2026, 3, 31)), (date(2026, 10, 23), date(2026, 10, 27))):
            start = datetime.combine(first, time(), UTC)
            end = datetime.combine(last, time(), UTC)
            got = conn.execute(expand(shift_changes(view), Request(start=start, end=end))).fetchall()
            expected = []
            for day in (first + timedelta(days=i) for i in range(-1, (last - first).days + 1)):
                for s in shifts:
                    if s.days is not None and day.isoweekday() not in s.days:
                        continue
                    local = datetime.combine(day, time(s.start // 60, s.start % 60))
                    at = datetime.fromtimestamp(roster.to_ns(local) / 1e9, UTC)
                    if s.name == "early" and day in AT_0230:
                        at = AT_0230[day]
                    crew = "AB-"[(day - date(2026, 1, 5)).days % 3] if s.rotations else "-"
                    text = s.name + (f": r crew {crew}" if crew != "-" else "")
                    if start <= at <= end:
                        expected.append((at, text, f"shift,{s.name}"))
            assert got == sorted(expected), (first, last)


NAMES = [
    "line1/weld01/current", "line1/weld01/x/current", "line1/weld/current", "line10/weld01/current",
    "line1/press[1]/force", "line1/weld01/current.sp", "a.b/c", "axb/c", "焊装/焊机1/电流",
    "line1/weld$1/current",
]  # fmt: skip
GLOBS = [
    "line1/weld*/current", "line1/**/current", "line1/weld??/current", "line1/weld0[12]/current",
    "line1/weld0[!2]/current", "line1/press[1]/force", "a.b/c", "焊装/*/电流", "line1/weld$1/current",
    "*/*/*",
]  # fmt: skip


def test_rule_globs_match_in_postgresql_as_in_the_rules_engine(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        for glob in GLOBS:
            # the pattern goes through Grafana's passes as a baked literal, as in the panels
            pattern = literal(glob_to_regex(glob))
            now = datetime.now(UTC)
            sql = expand(
                f"SELECT name FROM unnest(%s::text[]) AS name WHERE name ~ {pattern}", Request(now, now)
            )
            got = [r[0] for r in conn.execute(sql, (NAMES,)).fetchall()]
            assert got == [n for n in NAMES if glob_regex(glob).match(n)], glob


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "o'clock",
        "$asset",
        "${tag:sqlstring}",
        "[[line]]",
        "$__timeFilter(x)",
        "a$",
        "[x]",
        "焊机 ‘1’",
        "",
    ],
)
def test_literals_survive_grafanas_passes(pg_dsn: str, text: str) -> None:
    req = Request(
        start=datetime.now(UTC), end=datetime.now(UTC), variables={"asset": "X", "tag": "T", "line": "L"}
    )
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(expand(f"SELECT {literal(text)}", req)).fetchone() == (text,)
