"""The board's state (values, sparkline buckets, alerts, KPI tiles), its screens config and
its HTTP side (event stream, acknowledge and shelve with a PIN) over a real SQLite store and
the real HTTP API; uvicorn on loopback where a stream must really flow."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from plantpulse.alerts import Alert, AlertEvent
from plantpulse.api.app import Api
from plantpulse.cli import main
from plantpulse.config import load_config
from plantpulse.dashboards.board import BoardServer
from plantpulse.dashboards.pins import PinGuard, hash_pin, pin_hash_problem, verify_pin
from plantpulse.dashboards.screens import BoardsConfig, ScreenConfig
from plantpulse.dashboards.state import POINTS, BoardState, Screen
from plantpulse.errors import ConfigError
from plantpulse.httpserve import serving
from plantpulse.kpi.calendar import Window
from plantpulse.kpi.results import KpiResult
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store.sqlite import SQLiteStore

S = 10**9
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
MS = 1_000_000
TOKEN = "test-token-0123456789"
PIN = "4711"
TAGS = ["line1/weld01/current", "line1/weld01/voltage", "line2/press01/force"]


def raised(tag: str = "line1/weld01/current", at: int = T0, severity: str = "high") -> AlertEvent:
    return AlertEvent("raised", "weld-current-deviation", tag, severity, at, at, 186.2, "焊接电流偏差 +6.2 A")  # type: ignore[arg-type]


def cleared(ev: AlertEvent, at: int) -> AlertEvent:
    return AlertEvent("cleared", ev.rule, ev.tag, ev.severity, ev.raised_at, at, ev.value, ev.message)


def screen_of(board: BoardState, name: str = "all") -> Screen:
    s = board.screen(name)
    assert s is not None
    return s


# -- state ------------------------------------------------------------------------------------


def test_newest_sample_per_tag_wins_whatever_the_arrival_order() -> None:
    tags = TagRegistry(TAGS[:2])
    board = BoardState(tags, site="焊装车间")
    board.observe(SampleBatch.make(tags, [T0 + 2, T0 + 1, T0 + 1], [0, 0, 1], [181.0, 180.0, 24.0]), [])
    board.observe(SampleBatch.make(tags, [T0], [1], [99.0]), [])  # older than what is shown: ignored
    tags.id("line1/weld02/current")  # a tag appearing at run time joins the screen
    board.observe(SampleBatch.make(tags, [T0 + 5], [2], [float("nan")]), [])
    full = board.full(screen_of(board), T0 + 5)
    assert [t[:2] for t in full["tags"]] == [
        ["line1/weld01", "current"], ["line1/weld01", "voltage"], ["line1/weld02", "current"]
    ]  # fmt: skip
    assert full["values"] == [
        [0, 181.0, "good", T0 // MS],
        [1, 24.0, "good", T0 // MS],
        [2, None, "bad", T0 // MS],
    ]
    assert board.samples == 5


def test_sparklines_are_bucket_means_in_a_bounded_ring() -> None:
    tags = TagRegistry(TAGS[:1])
    boards = BoardsConfig(trend="1m", screens=[ScreenConfig(name="all")])
    board = BoardState(tags, boards=boards)
    step = board.step  # 1 s
    base = (T0 // step) * step
    # two samples in bucket 0, one bad sample (left out), then 3 buckets later one more
    board.observe(SampleBatch.make(tags, [base, base + step // 2], [0, 0], [10.0, 20.0]), [])
    board.observe(SampleBatch.make(tags, [base + step // 3], [0], [1e9], [Quality.BAD]), [])
    board.observe(SampleBatch.make(tags, [base + 3 * step], [0], [7.0]), [])
    hist = board.full(screen_of(board), base + 3 * step)["history"]
    row = hist["rows"][0]
    assert len(row) == POINTS and row[-4:] == [15.0, None, None, 7.0]
    # a full turn of the ring later the old buckets are gone, not mixed into new ones
    later = base + (POINTS + 3) * step
    board.observe(SampleBatch.make(tags, [later], [0], [5.0]), [])
    row = board.full(screen_of(board), later)["history"]["rows"][0]
    assert [m for m in row if m is not None] == [5.0]
    # the delta carries the current and the previous bucket of the tags changed since
    since = board.version
    board.observe(SampleBatch.make(tags, [later + step], [0], [9.0]), [])
    delta = board.delta(screen_of(board), since, later + step)
    assert delta["values"] == [[0, 9.0, "good", (later + step) // MS]]
    assert delta["hist"] == [[0, 9.0, 5.0]]
    assert board.delta(screen_of(board), board.version, later + step)["values"] == []


def test_alerts_follow_isa_18_2_until_back_to_normal() -> None:
    tags = TagRegistry(TAGS)
    board = BoardState(tags, on_shift=lambda asset, at: {"operator": ["张伟"]})
    a, b = raised(at=T0), raised("line2/press01/force", T0 + S, "critical")
    board.observe(SampleBatch.empty(tags), [a, b])
    items = board.alert_list(screen_of(board), T0 + 2 * S)["items"]
    assert [(i["tag"], i["state"]) for i in items] == [
        ("line2/press01/force", "unacknowledged-active"),  # most severe first
        ("line1/weld01/current", "unacknowledged-active"),
    ]
    assert items[0]["on_shift"] == {"operator": ["张伟"]}
    board.observe(SampleBatch.empty(tags), [cleared(a, T0 + 3 * S)])  # cleared, nobody acknowledged
    states = {i["tag"]: i["state"] for i in board.alert_list(screen_of(board), T0 + 4 * S)["items"]}
    assert states["line1/weld01/current"] == "unacknowledged-cleared"
    stored = Alert.from_event(a)
    stored.cleared_at, stored.acked_at, stored.acked_by = T0 + 3 * S, T0 + 5 * S, "张伟"
    board.observe_alert(stored, T0 + 5 * S)  # acknowledged after it cleared: normal, gone
    shelved = Alert.from_event(b)
    shelved.shelved_until = T0 + 60 * S
    board.sync_alerts([shelved], T0 + 6 * S)  # shelved elsewhere (read back from the store)
    listed = board.alert_list(screen_of(board), T0 + 6 * S)
    assert [(i["tag"], i["state"]) for i in listed["items"]] == [("line2/press01/force", "shelved")]
    assert listed["items"][0]["on_shift"] == {"operator": ["张伟"]}  # kept from the raise
    assert board.alert_list(screen_of(board), T0 + 61 * S)["items"][0]["state"] == "unacknowledged-active"


def test_alerts_held_are_bounded_cleared_ones_leave_first() -> None:
    tags = TagRegistry(TAGS)
    board = BoardState(tags, max_alerts=3)
    evs = [raised(at=T0 + i * S) for i in range(4)]
    board.observe(SampleBatch.empty(tags), evs[:3])
    board.observe(SampleBatch.empty(tags), [cleared(evs[1], T0 + 10 * S), evs[3]])
    assert sorted(board.alerts) == sorted(e.alert_id for e in (evs[0], evs[2], evs[3]))
    assert board.dropped["alerts"] == 1


def test_kpi_tiles_show_the_latest_shift_of_the_screen_s_assets() -> None:
    tags = TagRegistry(TAGS)
    boards = BoardsConfig(screens=[ScreenConfig(name="l1", assets=["line1"], kpis=["fpy", "oee"])])
    board = BoardState(tags, boards=boards)

    def result(kpi: str, asset: str, start: int, value: float, by: str = "shift") -> KpiResult:
        w = Window(start, start + 8 * 3600 * S, by, "day", "2026-01-01", f"2026-01-01 {by}")  # type: ignore[arg-type]
        return KpiResult(w, asset, kpi, value, None, None, 1.0, "A", ">= 98%", value >= 0.98, False, None)

    board.observe_kpis([
        result("fpy", "line1", T0, 0.99), result("fpy", "line1", T0 + 8 * 3600 * S, 0.97),
        result("fpy", "line1", T0 - 8 * 3600 * S, 0.5),  # older: does not replace the newer one
        result("fpy", "line2", T0, 0.9), result("scrap", "line1", T0, 0.1),  # not on this screen
        result("oee", "line1/weld01", T0, 0.8), result("oee", "line1", T0, 0.7, by="hour"),
    ])  # fmt: skip
    tiles = board.kpi_tiles(screen_of(board, "l1"))
    assert [(t["kpi"], t["asset"], t["value"], t["percent"]) for t in tiles] == [
        ("fpy", "line1", 0.97, True), ("oee", "line1/weld01", 0.8, True)
    ]  # fmt: skip
    assert tiles[0]["met"] is False and tiles[0]["target"] == ">= 98%"


# -- config -----------------------------------------------------------------------------------

PLANT = """\
site: {name: 焊装车间, timezone: Asia/Shanghai}
sources:
  - kind: opcua
    name: weld
    endpoint: opc.tcp://127.0.0.1:4840
    tags:
      - {name: line1/weld01/current, node: "ns=2;s=c1", unit: A}
      - {name: line1/weld02/current, node: "ns=2;s=c2", unit: A}
team:
  people:
    张伟: {roles: [operator], board_pin: "%s"}
boards:
  default: line1
  trend: 15m
  screens:
    - name: line1
      title: 一号线
      language: zh
      assets: [line1]
      tags: ["line1/*/current"]
      acknowledge: true
    - name: office
      refresh: 2s
      assets: [line9, "line1/weld0[3-9]"]
      tags: [line1/weld01/voltage]
      kpis: [fpy]
"""


def test_boards_config_cross_checked_at_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT % hash_pin(PIN, iterations=10_000), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    got = [str(p).replace(str(path), "plant.yaml") for p in err.value.problems]
    assert got == [
        "plant.yaml:24:16: boards.screens.1 (office): 'line9' is no asset",
        "plant.yaml:24:23: boards.screens.1 (office): 'line1/weld0[3-9]' matches no asset",
        "plant.yaml:25:14: boards.screens.1 (office): 'line1/weld01/voltage' matches no tag of the screen's"
        " assets",
        "plant.yaml:26:14: boards.screens.1 (office): unknown KPI 'fpy' (known: none)",
    ]
    good = (PLANT % hash_pin(PIN, iterations=10_000)).replace('[line9, "line1/weld0[3-9]"]', "[line1/weld02]")
    good = good.replace("tags: [line1/weld01/voltage]", "tags: [line1/weld02/current]").replace("[fpy]", "[]")
    path.write_text(good, encoding="utf-8")
    plant = load_config(path).plant
    assert plant.boards is not None and plant.boards.default_screen == "line1"
    bad = good.replace("refresh: 2s", "refresh: 10ms")
    bad = bad.replace(hash_pin(PIN, iterations=10_000)[:20], "sha256$abc")
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = "\n".join(str(p) for p in err.value.problems)
    assert re.search(
        r"plant.yaml:11:\d+: team.people.张伟.board_pin: board_pin is a hash like pbkdf2_sha256", text
    )
    assert re.search(r"plant.yaml:23:7: boards.screens.1.refresh: refresh is between 100ms and 60s", text)
    path.write_text(good.replace("default: line1", "default: nope"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plant.yaml:13:3: boards.default: no screen named 'nope'"):
        load_config(path)


def test_board_pin_command_prints_a_hash_that_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PIN + "\n"))
    assert main(["board", "pin"]) == 0
    line = capsys.readouterr().out.strip()
    stored = line.removeprefix("board_pin: ")
    assert pin_hash_problem(stored) is None and verify_pin(stored, PIN) and not verify_pin(stored, "4712")
    assert PIN not in line
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["board", "pin"]) == 1


# -- PINs -------------------------------------------------------------------------------------


def test_wrong_pins_lock_the_key_with_growing_lockouts() -> None:
    g = PinGuard(failures=3, window=60 * S, lockout=10 * S, max_lockout=25 * S)
    key = ("person:张伟",)
    for i in range(2):
        g.failed(key, T0 + i * S)
    assert g.wait(key, T0 + 2 * S) == 0
    g.failed(key, T0 + 2 * S)  # the third within the window: locked for 10 s
    assert g.wait(key, T0 + 3 * S) == 9 * S and g.wait(("person:李娜",), T0 + 3 * S) == 0
    for i in range(3):
        g.failed(key, T0 + (20 + i) * S)
    assert g.wait(key, T0 + 22 * S) == 20 * S  # doubled
    for i in range(3):
        g.failed(key, T0 + (50 + i) * S)
    assert g.wait(key, T0 + 52 * S) == 25 * S  # capped
    g.succeeded(key[0])
    assert g.wait(key, T0 + 53 * S) == 0
    slow = PinGuard(failures=3, window=5 * S)
    for i in range(6):  # misses further apart than the window never add up
        slow.failed(key, T0 + i * 3 * S)
    assert slow.wait(key, T0 + 16 * S) == 0
    small = PinGuard(max_keys=2)
    for i in range(3):
        small.failed((f"client:{i}",), T0)
    assert len(small._keys) == 2


# -- over HTTP ----------------------------------------------------------------------------------


class Clock:
    """The API's clock (``now`` and ``sleep_until``), fixed at a settable instant."""

    def __init__(self, at: int) -> None:
        self.at = at

    def now(self) -> int:
        return self.at

    async def sleep_until(self, at: int) -> None:
        await asyncio.sleep(0)


@dataclass
class Env:
    url: str
    board: BoardState
    server: BoardServer
    store: SQLiteStore
    alert_id: str


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'pp.db'}")
    await store.open()
    ev = raised(at=T0)
    await store.write_alert_events([ev], uuid.uuid4().hex, {})
    tags = TagRegistry(TAGS)
    boards = BoardsConfig(
        screens=[ScreenConfig(name="line1", assets=["line1"], acknowledge=True), ScreenConfig(name="tv")]
    )
    pins = {"张伟": hash_pin(PIN, iterations=10_000)}
    board = BoardState(tags, "焊装车间 <A>", boards=boards, pins=pins)
    board.observe(SampleBatch.empty(tags), [ev])
    clock = Clock(T0 + 10 * S)
    api = Api(store, token=TOKEN, clock=clock)  # the acknowledge and shelve path the board calls
    server = BoardServer(board, api, clock=clock.now)
    async with serving(Starlette(routes=server.routes)) as port:
        yield Env(f"http://127.0.0.1:{port}", board, server, store, ev.alert_id)
    await store.close()


async def events(client: httpx.AsyncClient, path: str) -> AsyncIterator[tuple[str, dict[str, object]]]:
    async with client.stream("GET", path) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield kind, json.loads(line.removeprefix("data: "))


async def test_the_api_serves_the_board_read_only_without_its_token(env: Env) -> None:
    api = Api(env.store, token=TOKEN, board=env.board)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pp.test") as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/board/line1/state")).json()["site"] == "焊装车间 <A>"
        assert (await client.get("/api/health")).status_code == 401


async def test_pages_and_the_event_stream(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=5) as client:
        root = await client.get("/")
        assert root.status_code == 200 and "charset=utf-8" in root.headers["content-type"]
        assert "焊装车间 &lt;A&gt;" in root.text and 'data-base="board/line1/"' in root.text  # the default
        assert (await client.get("/board/tv")).status_code == 200
        assert (await client.get("/board/nope")).status_code == 404
        js = await client.get("/board/_/board.js")
        assert js.headers["content-type"].startswith("text/javascript") and "EventSource" in js.text
        assert (await client.get("/board/_/x.js")).status_code == 404
        stream = events(client, "/board/line1/events")
        kind, full = await anext(stream)
        assert kind == "full" and full["tags"] == [
            ["line1/weld01", "current", ""],
            ["line1/weld01", "voltage", ""],
        ]
        assert full["people"] == ["张伟"] and full["screen"]["acknowledge"] is True  # type: ignore[index]
        assert [a["id"] for a in full["alerts"]["items"]] == [env.alert_id]  # type: ignore[index]
        env.board.observe(SampleBatch.make(env.board.tags, [T0 + S], [1], [24.5]), [])
        kind, update = await asyncio.wait_for(anext(stream), 5)
        assert kind == "update" and update["values"] == [[1, 24.5, "good", (T0 + S) // MS]]
        await stream.aclose()
        tv = await client.get("/board/tv/state")
        assert tv.json()["people"] == [] and tv.json()["screen"]["acknowledge"] is False


async def test_acknowledge_with_a_pin_goes_through_the_api_and_the_journal(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as client:
        body = {"alert": env.alert_id, "person": "张伟", "pin": "0000", "comment": "换了焊丝"}
        r = await client.post("/board/line1/ack", json=body)
        assert r.status_code == 403 and r.json() == {"error": "wrong person or PIN"}
        r = await client.post("/board/line1/ack", json={**body, "person": "nobody"})
        assert r.status_code == 403
        r = await client.post("/board/tv/ack", json={**body, "pin": PIN})
        assert r.status_code == 403 and r.json()["error"] == "this screen is read-only"
        r = await client.post("/board/line1/ack", content=json.dumps({**body, "pin": PIN}))
        assert r.status_code == 415  # not JSON: a form of another site cannot post here
        assert (await env.store.alert(env.alert_id)).acked_at is None  # type: ignore[union-attr]
        r = await client.post("/board/line1/ack", json={**body, "pin": PIN})
        assert r.status_code == 200 and r.json()["state"] == "acknowledged-active"
    alert = await env.store.alert(env.alert_id)
    assert alert is not None and (alert.acked_by, alert.acked_at, alert.ack_comment) == (
        "张伟",
        T0 + 10 * S,
        "换了焊丝",
    )
    entry = [e for e in await env.store.journal(env.alert_id) if e.action == "acknowledged"]
    assert [(e.actor, e.at) for e in entry] == [("张伟", T0 + 10 * S)]
    assert entry[0].detail["source"] == "board line1 from 127.0.0.1"
    assert env.board.alerts[env.alert_id].acked_by == "张伟"  # the screens show it at once
    assert PIN not in caplog.text and "0000" not in caplog.text
    assert "wrong person or PIN for '张伟' from 127.0.0.1" in caplog.text


async def test_shelve_with_a_pin_and_wrong_pins_are_rate_limited(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as client:
        body = {"alert": env.alert_id, "person": "张伟", "pin": PIN, "reason": "换枪头", "duration": "30m"}
        r = await client.post("/board/line1/shelve", json={**body, "duration": "soon"})
        assert r.status_code == 400
        r = await client.post("/board/line1/shelve", json=body)
        assert r.status_code == 200 and r.json()["state"] == "shelved" and r.json()["capped"] is False
        alert = await env.store.alert(env.alert_id)
        assert alert is not None and alert.shelved_until == T0 + 10 * S + 1800 * S
        for _ in range(5):
            r = await client.post("/board/line1/ack", json={**body, "pin": "9999"})
            assert r.status_code == 403
        r = await client.post("/board/line1/ack", json=body)  # the right PIN, but locked now
        assert r.status_code == 429 and r.json()["retry_after"] == 60 and r.headers["retry-after"] == "60"
    assert [e.actor for e in await env.store.journal(env.alert_id) if e.action == "shelved"] == ["张伟"]


async def test_an_acknowledgement_made_elsewhere_reaches_the_screens(env: Env) -> None:
    env.server.sync = 0.05
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as client:
        stream = events(client, "/board/line1/events")
        assert (await anext(stream))[0] == "full"
        await env.store.acknowledge(env.alert_id, "李娜", T0 + 5 * S, None, source="cli")
        async with asyncio.timeout(5):
            while True:
                kind, update = await anext(stream)
                if kind == "update" and "alerts" in update:
                    items = update["alerts"]["items"]  # type: ignore[index]
                    if items and items[0]["acked_by"] == "李娜":
                        break
        await stream.aclose()


def test_the_documented_boards_section_is_valid() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "dashboards.md").read_text(encoding="utf-8")
    section = doc.split("## Screens: `boards:` in `plant.yaml`", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    boards = BoardsConfig.model_validate(yaml.safe_load(example)["boards"])
    assert boards.default_screen == "line1" and [s.acknowledge for s in boards.screens] == [True, False]
