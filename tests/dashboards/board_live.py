"""A live board for browser tests and the benchmark: the real pipeline (engine, spool, SQLite
store) feeding ``BoardState`` as ``run_pipeline`` does, the HTTP API's acknowledge path, and
the board served by uvicorn on loopback; plus Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from plantpulse.api.app import Api
from plantpulse.config import SpoolConfig
from plantpulse.dashboards.board import BoardServer
from plantpulse.dashboards.pins import hash_pin
from plantpulse.dashboards.screens import BoardsConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.httpserve import free_port, serving
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store.spool import SpoolWriter
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.stream.pipeline import Pipeline

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # Chromium as root (CI) refuses to start with its sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIN = "2468"
RULES = """\
rules:
  - {id: weld-current-high, tag: "line1/*/current", above: 200, severity: high,
     description: 焊接电流过高}
"""


def require_chromium() -> None:
    """Skip without Debian's chromium (CI installs it: a missing one fails there instead)."""
    if shutil.which(CHROMIUM) is None or not shutil.which("chromium"):
        reason = f"{CHROMIUM} is not installed (apt-get install chromium fonts-wqy-microhei)"
        if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} and PLANTPULSE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(reason)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Debian Chromium under Playwright (never ``playwright install``)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class LiveBoard:
    tags: TagRegistry
    store: SQLiteStore
    writer: SpoolWriter
    pipeline: Pipeline
    board: BoardState
    api: Api
    port: int
    boards: BoardsConfig
    pins: dict[str, str]
    _http: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def put(self, samples: Sequence[tuple[str, float]], at: int | None = None) -> int:
        """Hand samples to the pipeline as a collector does; returns their timestamp."""
        at = at if at is not None else time.time_ns()
        await self.pipeline.sink.put([Sample(at, tag, value) for tag, value in samples])
        return at

    async def serve(self, *, fresh: bool = False) -> None:
        """Start the HTTP server on ``port``; ``fresh``: a new board state, as after a restart."""
        if fresh:
            self.board = BoardState(self.tags, "焊装车间", boards=self.boards, pins=self.pins, language="zh")
            self.pipeline.on_batch = self.board.observe
        server = BoardServer(self.board, self.api, sync=0.2)
        await self._http.enter_async_context(serving(Starlette(routes=server.routes), port=self.port))

    async def stop_serving(self) -> None:
        await self._http.aclose()


@contextlib.asynccontextmanager
async def live_board(tmp: Path, tag_names: Sequence[str], boards: dict[str, Any]) -> AsyncIterator[LiveBoard]:
    store = SQLiteStore(f"sqlite:///{tmp / 'pp.db'}")
    await store.open()
    tags = TagRegistry(tag_names)
    cfg = BoardsConfig.model_validate(boards)
    pins = {"张伟": hash_pin(PIN, iterations=10_000), "李娜": hash_pin(PIN, iterations=10_000)}
    board = BoardState(tags, "焊装车间", boards=cfg, pins=pins, language="zh",
                       units={n: "A" for n in tag_names if n.endswith("current")})  # fmt: skip
    writer = SpoolWriter(store, SpoolConfig(dir=tmp / "spool", fsync=False), open_store=False)
    await writer.start()
    pipeline = Pipeline(Engine(load_rules_text(RULES), tags), tags, writer, on_batch=board.observe)
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    api = Api(store, token="board-test-token-0123456789")
    live = LiveBoard(tags, store, writer, pipeline, board, api, free_port(), cfg, pins)
    await live.serve()
    try:
        yield live
    finally:
        await live.stop_serving()
        stop.set()
        await running
        await writer.stop()
        await store.close()
