"""The live board: newest value per tag from micro-batches, active alerts, served over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from plantpulse.alerts import AlertEvent
from plantpulse.dashboards.board import board_routes
from plantpulse.dashboards.state import BoardState
from plantpulse.httpserve import serving
from plantpulse.samples import Quality, SampleBatch, TagRegistry

T0 = 1_767_225_600_000_000_000


def raised(tag: str, at: int) -> AlertEvent:
    return AlertEvent("raised", "weld-current-deviation", tag, "high", at, at, 186.2, "焊接电流偏差 +6.2 A")


def test_newest_sample_per_tag_wins_whatever_the_arrival_order() -> None:
    tags = TagRegistry(["line1/weld01/current", "line1/weld01/voltage"])
    board = BoardState(tags, site="焊装车间")
    board.observe(SampleBatch.make(tags, [T0 + 2, T0 + 1, T0 + 1], [0, 0, 1], [181.0, 180.0, 24.0]), [])
    board.observe(SampleBatch.make(tags, [T0], [1], [99.0]), [])  # older than what is shown: ignored
    tags.id("line1/weld02/current")  # a tag appearing at run time
    board.observe(SampleBatch.make(tags, [T0 + 5], [2], [float("nan")]), [])
    snap = board.snapshot()
    assert snap["site"] == "焊装车间" and snap["samples"] == 5
    by_asset = {a["asset"]: a["signals"] for a in snap["assets"]}
    assert by_asset["line1/weld01"]["current"]["value"] == 181.0
    assert by_asset["line1/weld01"]["voltage"]["value"] == 24.0
    assert by_asset["line1/weld02"]["current"] == {
        "value": None,
        "quality": "bad",
        "ts": "2026-01-01T00:00:00.000Z",
    }


def test_alerts_become_active_and_clear() -> None:
    tags = TagRegistry(["line1/weld01/current"])
    board = BoardState(tags)
    ev = raised("line1/weld01/current", T0)
    board.observe(SampleBatch.make(tags, [T0], [0], [186.2], [Quality.GOOD]), [ev])
    snap = board.snapshot()
    assert [a["message"] for a in snap["active"]] == ["焊接电流偏差 +6.2 A"]
    assert snap["assets"][0]["alerting"] is True
    cleared = AlertEvent("cleared", ev.rule, ev.tag, "high", T0, T0 + 10**9, 186.2, ev.message)
    board.observe(SampleBatch.empty(tags), [cleared])
    snap = board.snapshot()
    assert snap["active"] == [] and snap["assets"][0]["alerting"] is False
    assert [r["event"] for r in snap["recent"]] == ["cleared", "raised"]


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, BoardState]]:
    board = BoardState(TagRegistry(["line1/weld01/current"]), site="焊装车间 <A>")
    async with serving(Starlette(routes=board_routes(board, refresh=0.01))) as port:
        yield f"http://127.0.0.1:{port}", board


async def test_page_state_and_event_stream_over_http(served: tuple[str, BoardState]) -> None:
    url, board = served
    async with httpx.AsyncClient(base_url=url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "charset=utf-8" in page.headers["content-type"]
        assert "焊装车间 &lt;A&gt; · 实时看板" in page.text  # the site name is escaped
        assert (await client.get("/board/state")).json()["assets"] == []
        async with client.stream("GET", "/board/events") as stream:
            lines = stream.aiter_lines()
            first = json.loads((await anext(lines)).removeprefix("data: "))
            assert first["samples"] == 0
            board.observe(
                SampleBatch.make(board.tags, [T0], [0], [186.2]), [raised("line1/weld01/current", T0)]
            )
            line = ""
            while not line.startswith("data: "):
                line = await asyncio.wait_for(anext(lines), 5)
            update = json.loads(line.removeprefix("data: "))
    assert update["active"][0]["tag"] == "line1/weld01/current"
    assert update["assets"][0]["signals"]["current"]["value"] == 186.2
