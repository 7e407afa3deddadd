"""Roster resolution: shifts across midnight, rotations over weeks, overrides, inheritance, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from team_fixture import PLANT, roster

from plantpulse.people.roster import Gap, Roster, in_subtree
from plantpulse.people.schema import TeamConfig
from plantpulse.timefmt import NS_PER_S

R = roster()
DAY0 = datetime(2026, 11, 30)  # day 0 of the rotation (site-local)
H = 3600 * NS_PER_S


def at(text: str, r: Roster = R) -> int:
    return r.to_ns(datetime.fromisoformat(text))


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_S


def crew_of(r: Roster, t: int) -> str:
    """The crew whose operator holds line1/weld02 at t (weld02 has no own assignments)."""
    ops = r.holders("line1/weld02", "operator", t)
    crews = {c for c, members in r.team.crews.items() if set(ops) & set(members)}
    assert len(crews) == 1, ops
    return crews.pop()


def test_site_zone_is_used() -> None:
    # 06:00 Asia/Shanghai is 22:00 UTC the day before
    assert at("2026-11-30 06:00") == utc("2026-11-29 22:00")


def test_rotation_day_zero() -> None:
    assert R.on_shift("line1/weld02", at("2026-11-30 07:00")) == {
        "operator": ["张伟"],
        "team_lead": ["李娜"],
        "quality_engineer": [],
        "workshop_director": ["郑浩"],
        "maintenance": ["Bob"],
    }


@pytest.mark.parametrize(
    ("when", "crew"),
    [
        ("2026-11-30 21:59", "B"),  # late of day 0
        ("2026-11-30 22:00", "C"),  # night of day 0 starts
        ("2026-12-01 05:59", "C"),  # ... and runs past midnight
        ("2026-12-02 23:30", "B"),  # night of day 2
        ("2026-12-03 05:59", "B"),  # still day 2's night although the date is day 3
        ("2026-12-03 06:00", "D"),  # early of day 3
    ],
)
def test_night_shift_belongs_to_the_day_it_starts(when: str, crew: str) -> None:
    assert crew_of(R, at(when)) == crew


@given(day=st.integers(-60, 400), minute=st.integers(0, 24 * 60 - 1))
@settings(max_examples=300, deadline=None)
def test_rotation_cycle_over_weeks(day: int, minute: int) -> None:
    t = R.to_ns(DAY0 + timedelta(days=day, minutes=minute))
    # the instance covering t started today, or yesterday for the night before 06:00
    start_day = day - 1 if minute < 6 * 60 else day
    shift = "early" if 6 * 60 <= minute < 14 * 60 else "late" if 14 * 60 <= minute < 22 * 60 else "night"
    pattern = {"early": "AADDCCBB", "late": "BBAADDCC", "night": "CCBBAADD"}[shift]
    expected = pattern[start_day % 8]
    local_date = (DAY0 + timedelta(days=day)).date()
    if local_date.isoformat() in ("2026-12-01", "2026-12-09"):
        return  # override days, checked below
    assert crew_of(R, t) == expected


def test_crew_pattern_repeats_every_eight_days_for_months() -> None:
    for week in range(0, 20):
        t = R.to_ns(DAY0 + timedelta(days=8 * week + 16, hours=10))
        assert R.holders("line1/weld02", "team_lead", t) == ["李娜"]


def test_leave_removes_the_person_and_nobody_else() -> None:
    t = at("2026-12-01 07:00")  # crew A early, 张伟 on leave all day (a bare date means the whole day)
    assert R.holders("line1/weld02", "operator", t) == []
    assert R.holders("line1/weld02", "team_lead", t) == ["李娜"]
    assert R.holders("line1/weld02", "operator", at("2026-12-01 13:59")) == []  # through the end of the day
    assert R.holders("line1/weld02", "operator", at("2026-11-30 07:00")) == ["张伟"]
    assert R.holders("line1/weld02", "operator", at("2026-12-08 07:00")) == ["张伟"]  # crew A again, back


def test_cover_for_takes_over_duties_in_the_window_only() -> None:
    assert R.holders("line1/weld02", "team_lead", at("2026-12-08 07:00")) == ["陈刚"]
    assert R.holders("line1/weld02", "team_lead", at("2026-12-08 14:00")) == ["赵敏"]  # late: crew B


def test_swap_exchanges_duties() -> None:
    t = at("2026-12-09 09:00")  # day 9 = cycle day 1: early crew A; 孙丽 works 张伟's shift
    assert R.holders("line1/weld02", "operator", t) == ["孙丽"]
    t = at("2026-12-09 15:00")  # late of cycle day 1: crew B, unaffected
    assert R.holders("line1/weld02", "operator", t) == ["王强"]


def test_cover_with_roles_adds_on_a_subtree() -> None:
    t = at("2026-12-12 09:00")  # Saturday: the office QE is off, Anna covers weld01 only
    assert R.holders("line1/weld01", "quality_engineer", t) == ["Anna"]
    assert R.holders("line1/weld02", "quality_engineer", t) == []


def test_most_specific_level_wins_and_empty_levels_fall_through() -> None:
    early, late = at("2026-12-02 07:00"), at("2026-12-02 15:00")
    assert R.holders("line1/weld01", "operator", early) == ["王强"]  # weld01's own early operator
    assert R.holders("line1/weld02", "operator", early) == ["孙丽"]  # crew D from line1
    assert R.holders("line1/weld01", "operator", late) == ["张伟"]  # weld01 level empty: line1's crew A


def test_inheritance_down_the_tree_and_explicit_hierarchy() -> None:
    t = at("2026-12-02 10:00")  # Wednesday
    assert R.holders("line1/weld01/torch", "equipment_engineer", t) == ["Anna"]
    assert "equipment_engineer" not in R.on_shift("line1/weld02", t)
    assert R.holders("line1/weld01", "maintenance", t) == ["Bob"]  # hall-a contains line1 explicitly
    assert R.holders("line2/press", "maintenance", t) == []
    assert R.holders("line10", "quality_engineer", t) == []  # line1 does not contain line10
    assert R.ancestors("line1/weld01") == ["line1/weld01", "line1", "hall-a", ""]
    assert in_subtree("line1/weld01", "line1") and not in_subtree("line10", "line1")


def test_weekday_only_shift() -> None:
    assert R.holders("line1", "quality_engineer", at("2026-12-04 16:59")) == ["吴芳"]  # Friday
    assert R.holders("line1", "quality_engineer", at("2026-12-05 09:00")) == []  # Saturday


def test_maintenance_windows_for_a_subtree() -> None:
    assert R.maintenance("line1/weld01/torch") == [(at("2026-12-05 08:00"), at("2026-12-05 12:00"))]
    assert R.maintenance("line1/weld02") == []


def test_gaps_find_uncovered_roles_and_merge_intervals() -> None:
    start, end = at("2026-11-30 00:00"), at("2026-12-01 00:00")
    gaps = R.gaps(start, end, 15 * 60 * NS_PER_S)
    qe = [g for g in gaps if g.role == "quality_engineer"]
    assert qe == [
        Gap("line1", "quality_engineer", start, at("2026-11-30 08:00")),
        Gap("line1", "quality_engineer", at("2026-11-30 17:00"), end),
    ]
    assert all(g.role in ("quality_engineer", "equipment_engineer") for g in gaps)
    with pytest.raises(ValueError, match="positive"):
        R.gaps(start, end, 0)


def test_check_pairs_report_required_roles_nobody_has_at_the_top() -> None:
    pairs = R.check_pairs(["process_engineer", "quality_engineer"], ["line1/weld01", "line2/press"])
    assert ("", "process_engineer") in pairs  # nobody anywhere: reported once, for the site
    assert not any(a != "" and r == "process_engineer" for a, r in pairs)
    assert ("line2/press", "quality_engineer") in pairs  # only line1 has a QE
    assert ("", "quality_engineer") not in pairs and ("hall-a", "quality_engineer") not in pairs
    assert ("line1", "operator") in pairs


BERLIN = PLANT.replace("Asia/Shanghai", "Europe/Berlin")
ZONES = {"Europe/Berlin": roster(BERLIN), "Asia/Shanghai": R}


def test_berlin_spring_forward_night_is_seven_hours() -> None:
    b = roster(BERLIN)
    # 2026-03-29 02:00 CET -> 03:00 CEST. Night of Mar 28: 21:00Z .. 04:00Z
    assert crew_of(b, utc("2026-03-28 21:00")) == crew_of(b, utc("2026-03-29 03:59:59"))
    night_crew = crew_of(b, utc("2026-03-28 21:00"))
    assert crew_of(b, utc("2026-03-28 20:59:59")) != night_crew
    assert crew_of(b, utc("2026-03-29 04:00")) != night_crew  # 06:00 CEST: early starts


def test_berlin_fall_back_night_is_nine_hours() -> None:
    b = roster(BERLIN)
    # 2026-10-25 03:00 CEST -> 02:00 CET. Night of Oct 24: 20:00Z .. 05:00Z
    night_crew = crew_of(b, utc("2026-10-24 20:00"))
    assert crew_of(b, utc("2026-10-25 04:59:59")) == night_crew
    assert crew_of(b, utc("2026-10-25 05:00")) != night_crew


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Shanghai"])
@given(offset=st.integers(0, 366 * 24 * 3600))
@settings(max_examples=300, deadline=None)
def test_three_shifts_cover_every_instant_exactly_once(zone: str, offset: int) -> None:
    r = ZONES[zone]
    t = utc("2026-01-01 00:00") + offset * NS_PER_S
    active = [name for name in ("early", "late", "night") if r.shift_day(r.team.shifts[name], t) is not None]
    assert len(active) == 1


def test_shift_starting_in_the_skipped_hour_starts_when_the_clock_resumes() -> None:
    team = TeamConfig.model_validate(
        {
            "people": {"x": {"roles": ["operator"]}},
            "shifts": {"odd": {"start": "02:30", "end": "10:00"}},
            "assignments": [{"roles": ["operator"], "people": ["x"], "shift": "odd"}],
        }
    )
    r = Roster(team, "Europe/Berlin")
    # 02:30 does not exist on 2026-03-29: the shift starts at the jump, 03:00 CEST = 01:00Z
    assert r.holders("a", "operator", utc("2026-03-29 00:59:59")) == []
    assert r.holders("a", "operator", utc("2026-03-29 01:00")) == ["x"]


SPLIT = {
    "people": {"x": {"roles": ["operator"]}, "y": {"roles": ["operator"]}},
    "shifts": {"evening": {"start": "18:00", "end": "02:30"}, "small": {"start": "02:30", "end": "10:00"}},
    "assignments": [
        {"roles": ["operator"], "people": ["x"], "shift": "evening"},
        {"roles": ["operator"], "people": ["y"], "shift": "small"},
    ],
}


@pytest.mark.parametrize(
    ("zone", "boundaries"),
    [
        # spring forward 02:00 CET -> 03:00 CEST: 02:30 is skipped, both shifts meet at the jump
        ("Europe/Berlin", {"2026-03-29 00:59:59": "x", "2026-03-29 01:00": "y"}),
        # fall back 03:00 CEST -> 02:00 CET: 02:30 happens twice, the boundary is the first one
        ("Europe/Berlin", {"2026-10-25 00:29:59": "x", "2026-10-25 00:30": "y", "2026-10-25 01:30": "y"}),
        ("Asia/Shanghai", {"2026-03-28 18:29:59": "x", "2026-03-28 18:30": "y"}),  # no DST
        ("Asia/Shanghai", {"2026-10-24 18:29:59": "x", "2026-10-24 18:30": "y"}),
    ],
)
def test_a_shift_boundary_at_a_skipped_or_repeated_time(zone: str, boundaries: dict[str, str]) -> None:
    r = Roster(TeamConfig.model_validate(SPLIT), zone)
    for when, who in boundaries.items():
        assert r.holders("a", "operator", utc(when)) == [who], when


@pytest.mark.parametrize(
    ("zone", "local", "instant"),
    [
        ("Europe/Berlin", "2026-03-29 01:59:59", "2026-03-29 00:59:59"),
        ("Europe/Berlin", "2026-03-29 02:00", "2026-03-29 01:00"),  # skipped: the jump
        ("Europe/Berlin", "2026-03-29 02:30", "2026-03-29 01:00"),
        ("Europe/Berlin", "2026-03-29 03:00", "2026-03-29 01:00"),
        ("Europe/Berlin", "2026-10-25 02:30", "2026-10-25 00:30"),  # repeated: the first, CEST
        ("Europe/Berlin", "2026-10-25 03:00", "2026-10-25 02:00"),
        ("Asia/Shanghai", "2026-03-29 02:30", "2026-03-28 18:30"),
        ("Asia/Shanghai", "2026-10-25 02:30", "2026-10-24 18:30"),
    ],
)
def test_wall_times_on_dst_nights(zone: str, local: str, instant: str) -> None:
    r = Roster(TeamConfig(), zone)
    assert r.to_ns(datetime.fromisoformat(local)) == utc(instant)


def team_with(overrides: list[dict[str, str]]) -> Roster:
    return Roster(
        TeamConfig.model_validate(
            {
                "people": {n: {"roles": ["operator"]} for n in ("A", "B", "C", "D")},
                "assignments": [{"asset": "line1", "roles": ["operator"], "people": ["A"]},
                                {"roles": ["operator"], "people": ["D"]}],  # the site level: D
                "overrides": [{"from": "2026-12-01", "to": "2026-12-01", **o} for o in overrides],
            }
        )
    )  # fmt: skip


LEAVE_A = {"kind": "leave", "person": "A"}
LEAVE_B = {"kind": "leave", "person": "B"}
B_FOR_A = {"kind": "cover", "person": "B", "for": "A"}
C_FOR_B = {"kind": "cover", "person": "C", "for": "B"}
SWAP_AC = {"kind": "swap", "people": ["A", "C"]}


@pytest.mark.parametrize(
    ("overrides", "holders"),
    [
        ([LEAVE_A, B_FOR_A], ["B"]),  # the cover fills in for the person on leave
        ([B_FOR_A, C_FOR_B], ["C"]),  # covers chain
        ([LEAVE_A, B_FOR_A, C_FOR_B, LEAVE_B], ["C"]),
        ([LEAVE_A, SWAP_AC], ["C"]),
        ([LEAVE_A, B_FOR_A, LEAVE_B], ["D"]),  # the substitute is away too: the level falls through
        ([B_FOR_A, {"kind": "cover", "person": "A", "for": "B"}], ["B"]),  # a circle still has somebody
    ],
)
def test_overrides_give_the_same_holders_in_any_order(
    overrides: list[dict[str, str]], holders: list[str]
) -> None:
    t = at("2026-12-01 12:00", team_with([]))
    for order in (overrides, overrides[::-1]):
        assert team_with(order).holders("line1/weld01", "operator", t) == holders, order


def test_leave_also_removes_a_cover_with_roles() -> None:
    cover = {"kind": "cover", "person": "B", "roles": ["operator"], "asset": "line1"}
    t = at("2026-12-01 12:00", team_with([]))
    assert team_with([cover]).holders("line1", "operator", t) == ["A", "B"]
    assert team_with([cover, LEAVE_B]).holders("line1", "operator", t) == ["A"]


def test_shanghai_night_is_always_eight_hours() -> None:
    for day in range(0, 365, 7):
        d = datetime(2026, 1, 1) + timedelta(days=day)
        start = R.to_ns(d.replace(hour=22))
        assert R.shift_day(R.team.shifts["night"], start + 8 * H - 1) is not None
        assert R.shift_day(R.team.shifts["night"], start + 8 * H) is None
