"""The built-in live board for shop-floor screens: one page, a JSON snapshot, an event stream.

``GET /`` is a self-contained page (no CDN: plants are often offline) that follows
``GET /board/events`` (server-sent events, one snapshot whenever the board changes, at most
every ``refresh`` seconds) and falls back to polling ``GET /board/state``. Read-only: nothing
here changes an alert, so it needs no token; acknowledging goes through the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from plantpulse.dashboards.state import BoardState


def board_routes(state: BoardState, refresh: float = 0.5) -> list[Route]:
    page = files("plantpulse.dashboards").joinpath("board.html").read_text(encoding="utf-8")

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page.replace("{{site}}", _escape(state.site)))

    async def snapshot(request: Request) -> JSONResponse:
        return JSONResponse(state.snapshot())

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            sent = -1
            while not await request.is_disconnected():
                if state.version != sent:
                    sent = state.version
                    yield f"data: {json.dumps(state.snapshot(), ensure_ascii=False)}\n\n"
                await asyncio.sleep(refresh)  # the screen's refresh cadence, not synchronisation

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/", index),
        Route("/board/state", snapshot),
        Route("/board/events", events),
    ]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
