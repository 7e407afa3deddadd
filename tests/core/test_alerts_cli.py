"""``plantpulse alerts list | show | export`` on a real SQLite store: the same filters and
records as the HTTP API, exports that stream page by page, one-line errors with exit 1."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from plantpulse.alertquery import CSV_FIELDS, AlertQuery, select
from plantpulse.alerts import Alert, AlertEvent
from plantpulse.cli import main
from plantpulse.store.sqlite import SQLiteStore

S = 10**9
T0 = 1_796_083_200 * S  # 2026-12-01T00:00:00Z
HOUR = 3600 * S


def raised(tag: str, at: int, value: float = 206.2, rule: str = "weld-current-deviation") -> AlertEvent:
    return AlertEvent("raised", rule, tag, "high", at, at, value, "焊接电流偏差 +6.2 A")


def cleared(ev: AlertEvent, at: int) -> AlertEvent:
    return AlertEvent("cleared", ev.rule, ev.tag, ev.severity, ev.raised_at, at, ev.value, "")


async def _fill(
    url: str, events: Sequence[AlertEvent], on_shift: dict[str, Any] | None = None
) -> SQLiteStore:
    """An open store holding ``events``; the caller closes it."""
    store = SQLiteStore(url)
    await store.open()
    await store.write_alert_events(list(events), uuid.uuid4().hex, on_shift or {})
    return store


def fill(url: str, events: Sequence[AlertEvent]) -> None:
    async def go() -> None:
        await (await _fill(url, events)).close()

    asyncio.run(go())


@pytest.fixture
def three(tmp_path: Path) -> tuple[str, list[str]]:
    """A store with three alerts: acknowledged-active, unacknowledged-cleared, shelved."""
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    a, b, c = (
        raised("line1/weld01/current", T0),
        raised("line1/weld02/current", T0 + S, 207.5),
        raised("line2/press01/force", T0 + 2 * S, 18.0, rule="press-force"),
    )

    async def go() -> None:
        store = await _fill(url, [a, b, c, cleared(b, T0 + 9 * S)], {a.alert_id: {"team_lead": ["李娜"]}})
        await store.acknowledge(a.alert_id, "赵敏", T0 + 5 * S, "已停机", source="cli")
        await store.shelve(c.alert_id, "李娜", T0 + 6 * S, T0 + 10**6 * HOUR, "换模具")
        await store.close()

    asyncio.run(go())
    return url, [a.alert_id, b.alert_id, c.alert_id]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_as_a_table_newest_first(
    three: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, (a, b, c) = three
    code, out, err = run(["alerts", "list", "--store", url], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "RAISED",
        "(UTC)",
        "STATE",
        "SEVERITY",
        "RULE",
        "TAG",
        "VALUE",
        "MESSAGE",
    ]
    assert [ln.split()[:3] for ln in lines[1:]] == [
        [c, "2026-12-01T00:00:02.000Z", "shelved"],
        [b, "2026-12-01T00:00:01.000Z", "unacknowledged-cleared"],
        [a, "2026-12-01T00:00:00.000Z", "acknowledged-active"],
    ]
    assert lines[2].endswith("line1/weld02/current  207.5  焊接电流偏差 +6.2 A")


def test_list_filters_and_formats(three: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    url, (a, b, c) = three
    argv = ["alerts", "list", "--store", url, "--state", "acknowledged,cleared", "--format", "jsonl"]
    code, out, _ = run(argv, capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [r["id"] for r in records] == [b, a]
    assert records[1]["raised_at"] == "2026-12-01T00:00:00.000Z" and records[1]["raised_at_ns"] == T0
    assert records[1]["acked_at"] == "2026-12-01T00:00:05.000Z" and records[1]["on_shift"] == {
        "team_lead": ["李娜"]
    }
    code, out, _ = run(
        ["alerts", "list", "--store", url, "--asset", "line*/weld0?", "--format", "csv"], capsys
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and list(rows[0]) == list(CSV_FIELDS)
    assert [(r["id"], r["cleared_at"], r["acked_by"]) for r in rows] == [
        (b, "2026-12-01T00:00:09.000Z", ""), (a, "", "赵敏")
    ]  # fmt: skip
    code, out, _ = run(["alerts", "list", "--store", url, "--rule", "press-force", "--format", "csv"], capsys)
    assert [r["id"] for r in csv.DictReader(io.StringIO(out))] == [c]
    window = ["--since", "2026-12-01T08:00:01+08:00", "--until", "2026-12-01T00:00:02Z", "--format", "jsonl"]
    code, out, _ = run(["alerts", "list", "--store", url, *window], capsys)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [b]


def test_list_says_when_the_limit_cut_it(
    three: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, (_, _, c) = three
    code, out, err = run(["alerts", "list", "--store", url, "--limit", "1", "--format", "jsonl"], capsys)
    assert (code, [json.loads(line)["id"] for line in out.splitlines()]) == (0, [c])
    assert err == "the newest 1 shown; --limit N or alerts export for more\n"
    code, out, err = run(["alerts", "list", "--store", url, "--state", "normal"], capsys)
    assert (code, out, err) == (0, "", "no alerts match\n")


def test_show_prints_the_alert_and_its_journal(
    three: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, (a, _, _) = three
    code, out, err = run(["alerts", "show", a, "--store", url], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"id:             {a}"
    assert "acked_by:       赵敏" in lines and "on_shift:       team_lead: 李娜" in lines
    assert lines[-3:] == [
        "journal:",
        "  2026-12-01T00:00:00.000Z  raised        engine",
        "  2026-12-01T00:00:05.000Z  acknowledged  赵敏    comment=已停机 source=cli",
    ]
    code, out, _ = run(["alerts", "show", a, "--store", url, "--format", "jsonl"], capsys)
    record = json.loads(out)
    assert record["state"] == "acknowledged-active"
    assert [(e["at"], e["action"], e["actor"]) for e in record["journal"]] == [
        ("2026-12-01T00:00:00.000Z", "raised", "engine"), ("2026-12-01T00:00:05.000Z", "acknowledged", "赵敏")
    ]  # fmt: skip


def test_export_streams_every_alert_across_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    now = time.time_ns()
    # 1,234 alerts over two days (40 pairs raised at the same instant), more than two pages
    events = [raised(f"line{i % 3}/weld{i:04d}/current", now - (i % 1194) * 120 * S) for i in range(1234)]
    fill(url, events)
    code, out, err = run(["alerts", "export", "--store", url, "--format", "jsonl"], capsys)
    got = [json.loads(line) for line in out.splitlines()]
    assert (code, err) == (0, "1234 alerts exported\n")
    assert sorted(r["id"] for r in got) == sorted(e.alert_id for e in events)  # each once
    keys = [(r["raised_at_ns"], r["id"]) for r in got]
    assert keys == sorted(keys, reverse=True)
    code, out, err = run(["alerts", "export", "--store", url, "--since", "24h", "--asset", "line1"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    want = [e for e in events if e.tag.startswith("line1/") and e.raised_at >= now - 24 * HOUR]
    assert (code, len(rows), err) == (0, len(want), f"{len(want)} alerts exported\n")


async def test_select_reads_one_page_at_a_time(tmp_path: Path) -> None:
    events = [
        raised(f"line1/w{i:03d}/current", T0 + (i // 40) * S) for i in range(1200)
    ]  # 40 share each instant
    store = await _fill(f"sqlite:///{tmp_path / 'pp.db'}", events)
    pages: list[int] = []
    alerts = store.alerts

    async def spy(*args: Any, **kw: Any) -> list[Alert]:
        got = await alerts(*args, **kw)
        pages.append(len(got))
        return got

    store.alerts = spy  # type: ignore[method-assign]  (counts what each store read returns)
    try:
        seen = [a.id async for a in select(store, AlertQuery(), T0, page=100)]
    finally:
        await store.close()
    assert len(seen) == len(set(seen)) == 1200
    assert pages == [100] * 12 + [0]


BAD = [
    (["list", "--since", "yesterday"],
     "plantpulse alerts list: --since: 'yesterday' is not a time; write ISO-8601 (2026-12-01T08:00:00Z, "
     "2026-12-01, 2026-12-01T16:00+08:00) or a duration before now (90m, 24h, 7d)"),
    (["list", "--limit", "0"],
     "plantpulse alerts list: --limit: expected a whole number of at least 1, got '0'"),
    (["export", "--limit", "-1"],
     "plantpulse alerts export: --limit: expected a whole number of at least 1, got '-1'"),
    (["list", "--state", "broken"],
     "plantpulse alerts list: --state: unknown state 'broken' (one of: active, cleared, unacknowledged, "
     "acknowledged, normal, unacknowledged-active, acknowledged-active, unacknowledged-cleared, shelved)"),
    (["export", "--since", "2026-12-02", "--until", "2026-12-01"],
     "plantpulse alerts export: --until must be later than --since"),
    (["list", "--asset", "line1/[a-"],
     "plantpulse alerts list: --asset: invalid pattern 'line1/[a-': '[' at character 7 opens a character "
     "class that is never closed (write [abc] or [!abc])"),
    (["show", "no-such-id"], "plantpulse alerts show: no alert no-such-id"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_1(
    three: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    url, _ = three
    assert run(["alerts", *argv, "--store", url], capsys) == (1, "", line + "\n")


def test_a_missing_store_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.db"
    code, out, err = run(["alerts", "list", "--store", f"sqlite:///{missing}"], capsys)
    assert (code, out) == (1, "")
    assert (
        err == f"plantpulse alerts list: no store at {missing}: name one with --store URL or -c plant.yaml\n"
    )
    assert not missing.exists()
    code, _, err = run(["alerts", "export", "--store", "mysql://db/x"], capsys)
    assert (code, err) == (
        1,
        "plantpulse alerts export: unsupported store URL scheme 'mysql': use sqlite:///path or postgresql://...\n",
    )


def test_the_store_of_a_plant_yaml(three: tuple[str, list[str]], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    url, (a, _, _) = three
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        f'store: {{url: "{url}"}}\n', encoding="utf-8"
    )  # no sources: alerts only reads the store
    code, out, _ = run(
        ["alerts", "list", "-c", str(plant), "--state", "acknowledged", "--format", "jsonl"], capsys
    )
    assert (code, [json.loads(line)["id"] for line in out.splitlines()]) == (0, [a])
