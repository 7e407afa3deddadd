"""The board in a real headless Chromium (Debian's, driven by Playwright), fed by the real
pipeline: it loads, a sample shows within a second, an alert appears and flashes, the board
acknowledges it (store and journal), the page recovers from a server restart and says when
the feed is stale. Screenshots are kept in the session's temporary directory (path printed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from board_live import PIN, LiveBoard, chromium, live_board, require_chromium

pytestmark = pytest.mark.slow

TAGS = [f"line1/weld0{i}/{s}" for i in (1, 2) for s in ("current", "voltage")]
BOARDS = {
    "stale_after": "2s",
    "screens": [
        {"name": "line1", "title": "一号线", "language": "zh", "assets": ["line1"], "acknowledge": True},
        {"name": "tv", "language": "en"},
    ],
}


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("board-screenshots")


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveBoard]:
    require_chromium()
    async with live_board(tmp_path, TAGS, BOARDS) as lb:
        yield lb


@pytest.fixture
async def page(live: LiveBoard) -> AsyncIterator[Any]:
    async with chromium() as browser:
        pg = await browser.new_page(viewport={"width": 1920, "height": 1080})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        assert errors == []


async def shot(page: Any, shots: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = shots / f"{name}.png"
    await page.screenshot(path=str(path))
    with capsys.disabled():
        print(f"\nboard screenshot: {path}")


async def opened(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_function("document.getElementById('conn').dataset.state !== 'connecting'")


def value_of(tag: str) -> str:
    return f"document.querySelector('[data-tag=\"{tag}\"] .v')?.firstChild?.textContent"


async def test_loads_and_a_sample_shows_within_a_second(
    live: LiveBoard, page: Any, shots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await live.put([(t, 180.0 if t.endswith("current") else 24.0) for t in TAGS])
    await opened(page, f"{live.url}/")  # the default screen: the first
    assert await page.text_content("#alarms-title") == "报警"  # the screen is in Chinese
    assert await page.title() == "一号线 · 焊装车间"
    await live.put([("line1/weld02/current", 187.5)])
    began = time.monotonic()
    await page.wait_for_function(f"{value_of('line1/weld02/current')} === '187.5'", timeout=1000)
    assert time.monotonic() - began < 1.0
    assert await page.text_content("[data-tag='line1/weld02/current'] .v small") == "A"
    await shot(page, shots, "board-normal", capsys)
    await opened(page, f"{live.url}/board/tv?lang=en")
    assert await page.text_content("#alarms-title") == "Alarms"
    await page.wait_for_function(f"{value_of('line1/weld02/current')} === '187.5'")


async def test_an_alert_flashes_until_acknowledged_on_the_board(
    live: LiveBoard, page: Any, shots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await live.put([(t, 180.0 if t.endswith("current") else 24.0) for t in TAGS])
    await opened(page, f"{live.url}/board/line1")
    await live.put([("line1/weld01/current", 212.5)])  # above 200: weld-current-high
    item = page.locator("#alarm-list li.al")
    await item.first.wait_for()
    assert await item.first.get_attribute("data-state") == "unacknowledged-active"
    bar = item.first.locator(".bar")
    assert await bar.evaluate("e => getComputedStyle(e).animationName") == "flash"
    seen = set()  # the bar's opacity really changes: it flashes
    for _ in range(12):
        seen.add(await bar.evaluate("e => getComputedStyle(e).opacity"))
        await page.wait_for_timeout(150)
    assert len(seen) == 2
    assert "alarm-high" in (await page.locator(".asset").first.get_attribute("class") or "")  # weld01
    await shot(page, shots, "board-alarm", capsys)
    await live.writer.flush()  # the raise is in the store before anyone can acknowledge it
    alert_id = await item.first.get_attribute("data-id")
    await item.first.get_by_role("button", name="确认").click()
    await page.select_option("#act-person", "张伟")
    await page.fill("#act-pin", "0000")
    await page.fill("#act-comment", "更换导电嘴")
    await page.click("#act-ok")
    await page.wait_for_function("document.getElementById('act-error').textContent !== ''")
    assert await page.text_content("#act-error") == "人员或 PIN 码错误"
    assert await page.input_value("#act-pin") == ""  # the page never keeps a PIN
    await page.fill("#act-pin", PIN)
    await shot(page, shots, "board-acknowledge", capsys)
    await page.click("#act-ok")
    await page.wait_for_function(
        "document.querySelector('#alarm-list li.al').dataset.state === 'acknowledged-active'"
    )
    assert await bar.evaluate("e => getComputedStyle(e).animationName") == "none"  # no more flashing
    alert = await live.store.alert(alert_id or "")
    assert alert is not None and alert.acked_by == "张伟" and alert.ack_comment == "更换导电嘴"
    journal = [e for e in await live.store.journal(alert.id) if e.action == "acknowledged"]
    assert [(e.actor, e.detail["source"]) for e in journal] == [("张伟", "board line1 from 127.0.0.1")]
    await shot(page, shots, "board-acknowledged", capsys)


async def test_the_alarm_list_stays_bounded(live: LiveBoard, page: Any) -> None:
    await opened(page, f"{live.url}/board/tv")
    for i in range(40):  # forty alarms (a raise, a clear, a raise ...): the page lists thirty
        await live.put([("line1/weld01/current", 250.0 if i % 2 == 0 else 100.0)], time.time_ns() + i)
        await live.put([("line1/weld02/current", 250.0 if i % 2 == 0 else 100.0)], time.time_ns() + i)
    await page.wait_for_function("document.getElementById('alarm-more').textContent === '+10 more'")
    assert await page.locator("#alarm-list li").count() == 30
    nodes = await page.evaluate("document.getElementsByTagName('*').length")
    for i in range(200):  # many updates later the page holds no more nodes than before
        await live.put([(t, 150.0 + i % 7) for t in TAGS])
    await page.wait_for_function(f"{value_of('line1/weld02/voltage')} === '{150 + 199 % 7}'")
    assert await page.evaluate("document.getElementsByTagName('*').length") == nodes


async def test_recovers_after_the_server_restarts(
    live: LiveBoard, page: Any, shots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await live.put([(t, 180.0) for t in TAGS])
    await opened(page, f"{live.url}/board/tv")
    await live.stop_serving()
    await page.wait_for_function(
        "document.getElementById('conn').dataset.state === 'unreachable'", timeout=8000
    )
    assert await page.text_content("#banner") == "Server unreachable: retrying"
    await shot(page, shots, "board-unreachable", capsys)
    await live.serve(fresh=True)  # a new process would start from nothing, too
    await live.put([("line1/weld01/voltage", 23.75)])
    await page.wait_for_function(f"{value_of('line1/weld01/voltage')} === '23.75'", timeout=10000)
    await page.wait_for_function("document.getElementById('banner').hidden")


async def test_says_when_the_feed_is_stale(
    live: LiveBoard, page: Any, shots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await live.put([(t, 180.0) for t in TAGS])
    await opened(page, f"{live.url}/board/tv")
    assert await page.evaluate("document.getElementById('banner').hidden")
    # nothing more comes in: after stale_after (2 s) the page says so, the server still answers
    await page.wait_for_function("document.getElementById('conn').dataset.state === 'stale'", timeout=5000)
    assert (await page.text_content("#banner") or "").startswith("Data stale: no new values for")
    assert "stale" in (await page.get_attribute("[data-tag='line1/weld01/current']", "class") or "")
    await shot(page, shots, "board-stale", capsys)
    await live.put([(t, 181.0) for t in TAGS])
    await page.wait_for_function("document.getElementById('banner').hidden")
