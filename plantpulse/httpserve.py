"""Serving an ASGI app with uvicorn inside our own event loop (board, API, push receiver).

uvicorn normally installs its own SIGINT/SIGTERM handlers; here the command that runs the
pipeline owns the signals, so they are left alone, and shutdown is ours to trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: a free port) until the block ends; yields the port."""
    port = port or free_port(host)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(), name=f"http {host}:{port}")
    while not server.started:
        if task.done():
            task.result()  # the bind failed: raise it here
            raise OSError(f"cannot serve on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        # uvicorn waits for every response to finish: long-lived ones (the board's event
        # streams) are ended by the hook an app may leave in its state
        end_streams = getattr(getattr(app, "state", None), "end_streams", None)
        if callable(end_streams):
            await end_streams()
        server.should_exit = True
        await task
