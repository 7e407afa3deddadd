"""A local push receiver: what the demo and the tests point webhooks at.

It accepts JSON posts (Apprise's ``json://`` format: title, message, type) on any path,
keeps them in memory and optionally prints each one, so a person watching the demo sees
exactly what a phone would receive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class PushReceiver:
    """``async with PushReceiver() as rx: rx.url`` -> ``json://127.0.0.1:PORT/push``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, on_push: Callable[[Received], None] | None = None
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.on_push = on_push
        self.received: list[Received] = []
        self._arrived = asyncio.Condition()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"json://{self.host}:{self.port}/push"

    async def _handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw.decode("utf-8", "replace")}
        item = Received(request.url.path, body, dict(request.headers))
        self.received.append(item)
        if self.on_push is not None:
            self.on_push(item)
        async with self._arrived:
            self._arrived.notify_all()
        return JSONResponse({"ok": True})

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` pushes arrived (an event, not a sleep)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), within)
        return self.received

    async def __aenter__(self) -> PushReceiver:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)  # uvicorn offers no started event
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
