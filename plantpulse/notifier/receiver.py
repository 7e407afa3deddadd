"""A local push receiver: what the demo and the tests point webhooks at.

It accepts JSON posts (Apprise's ``json://`` format: title, message, type) on any path,
keeps them in memory and optionally prints each one, so a person watching the demo sees
exactly what a phone would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plantpulse.httpserve import free_port, serving

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
        self.port = port or free_port(host)
        self.on_push = on_push
        self.received: list[Received] = []
        self._arrived = asyncio.Condition()
        self._app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._serving = contextlib.AsyncExitStack()

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
        await self._serving.enter_async_context(serving(self._app, self.host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._serving.aclose()
