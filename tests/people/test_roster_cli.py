"""plantpulse roster show | check."""

from __future__ import annotations

from pathlib import Path

import pytest
from team_fixture import PLANT

from plantpulse.cli import main


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "plant.yaml"
    p.write_text(PLANT, encoding="utf-8")
    return p


def test_show(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["roster", "show", "-c", str(cfg), "--asset", "line1/weld01", "--at", "2026-12-01 23:30"]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "line1/weld01 at 2026-12-01 23:30 CST (Asia/Shanghai)"
    assert "  operator            陈刚" in out
    assert "  quality_engineer    (nobody)" in out


def test_show_maintenance_and_default_now(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["roster", "show", "-c", str(cfg), "--asset", "line1/weld01", "--at", "2026-12-05 09:00"]) == 0
    )
    assert "maintenance until 2026-12-05 12:00 CST" in capsys.readouterr().out
    assert main(["roster", "show", "-c", str(cfg), "--asset", "line1"]) == 0


def test_check_reports_gaps_and_exits_1(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roster", "check", "-c", str(cfg), "--days", "1", "--from", "2026-11-30"]) == 1
    out = capsys.readouterr().out
    assert "line1: quality_engineer: nobody 2026-11-30 00:00 CST .. 2026-11-30 08:00 CST (8h)" in out


def test_check_passes_on_a_covered_roster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "plant.yaml"
    p.write_text(
        "site: {timezone: Europe/Berlin}\nteam:\n  people: {x: {roles: [operator]}}\n"
        "  assignments: [{roles: [operator], people: [x]}]\n",
        encoding="utf-8",
    )
    assert main(["roster", "check", "-c", str(p), "--days", "3"]) == 0
    assert "every role is covered" in capsys.readouterr().out


def test_bad_config_is_reported_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "plant.yaml"
    p.write_text(PLANT.replace("shift: office}", "shift: ofice}"), encoding="utf-8")
    assert main(["roster", "check", "-c", str(p)]) == 1
    assert "unknown shift 'ofice'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("zone", "at", "shown"),
    [
        ("Europe/Berlin", "2026-03-29 02:30", "2026-03-29 03:00 CEST"),  # skipped: read as the jump
        ("Europe/Berlin", "2026-10-25 02:30", "2026-10-25 02:30 CEST"),  # repeated: the first one
        ("Europe/Berlin", "2026-10-25 02:30+01:00", "2026-10-25 02:30 CET"),  # an offset picks
        ("Asia/Shanghai", "2026-03-29 02:30", "2026-03-29 02:30 CST"),
    ],
)
def test_show_at_a_time_dst_skips_or_repeats(
    zone: str, at: str, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "plant.yaml"
    cfg.write_text(PLANT.replace("Asia/Shanghai", zone), encoding="utf-8")
    assert main(["roster", "show", "-c", str(cfg), "--asset", "line1", "--at", at]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"line1 at {shown} ({zone})"


SECRETS_UNSET = """\
site: {name: 焊装车间, timezone: Asia/Shanghai}
sources:
  - kind: opcua
    name: weld
    endpoint: opc.tcp://127.0.0.1:4840
    username: ${PP_ROSTER_UNSET_USER}
    password: ${PP_ROSTER_UNSET_PASSWORD}
    tags: [{name: line1/weld01/current, node: "ns=2;s=line1/weld01/current"}]
notifications: {urls: ["${PP_ROSTER_UNSET_URL}"]}
api: {token: "${PP_ROSTER_UNSET_TOKEN}"}
team:
  people:
    张伟:
      roles: [operator]
      contacts: {wecom: "wecombot://${PP_ROSTER_UNSET_KEY}", sms: "${PP_ROSTER_UNSET_SMS}"}
    李娜: {roles: [team_lead], contacts: {email: "mailto://qa:${PP_ROSTER_UNSET_SMTP}@example.com"}}
  shifts:
    day: {start: "08:00", end: "20:00"}
  assignments:
    - {asset: line1, roles: [operator], people: [张伟], shift: day}
    - {asset: line1, roles: [team_lead], people: [李娜]}
  policies:
    default:
      steps: [{after: 0s, to: [operator], channels: [wecom, sms]}]
  links: {secret: "${PP_ROSTER_UNSET_SECRET}"}
"""


def test_roster_needs_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "plant.yaml"
    p.write_text(SECRETS_UNSET, encoding="utf-8")  # none of the ${PP_ROSTER_UNSET_*} is set
    assert main(["roster", "show", "-c", str(p), "--asset", "line1/weld01", "--at", "2026-12-01 09:00"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["line1/weld01 at 2026-12-01 09:00 CST (Asia/Shanghai)", "  operator   张伟",
                                "  team_lead  李娜"]  # fmt: skip
    assert err == ""
    assert main(["roster", "check", "-c", str(p), "--days", "1", "--from", "2026-12-01"]) == 1  # gaps
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "line1: operator: nobody 2026-12-01 00:00 CST .. 2026-12-01 08:00 CST (8h)"
    assert err == "roster check: 2 gap(s) 2026-12-01 00:00 CST .. 2026-12-02 00:00 CST (Asia/Shanghai)\n"
    # plantpulse check still wants every secret
    assert main(["check", "-c", str(p)]) == 1
    assert "environment variable PP_ROSTER_UNSET_KEY is not set" in capsys.readouterr().err


def test_roster_still_reports_a_variable_it_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "plant.yaml"
    p.write_text(SECRETS_UNSET.replace("Asia/Shanghai", '"${PP_ROSTER_UNSET_ZONE}"'), encoding="utf-8")
    assert main(["roster", "show", "-c", str(p), "--asset", "line1"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{p}:1:20: site.timezone: unknown time zone '' (use an IANA name such as Asia/Shanghai)",
        f"{p}:1:30: site.timezone: environment variable PP_ROSTER_UNSET_ZONE is not set",
    ]
