"""Serving an ASGI app with uvicorn inside our own event loop (board, API, push receiver).

uvicorn normally installs its own SIGINT/SIGTERM handlers; here the command that runs the
pipeline owns the signals, so they are left alone, and shutdown is ours to trigger. We bind the
socket ourselves: uvicorn answers a failed bind with ``sys.exit`` inside its task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from plantpulse.ports import bind, free_port

__all__ = ["free_port", "serving"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: a free port) until the block ends; yields the port."""
    sock = bind(host, port, "http")
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http {host}:{port}")
    try:
        await _started(server, task)
    except BaseException:
        sock.close()
        raise
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


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    while not server.started:
        if task.done():
            task.result()
            raise OSError(f"cannot serve on {server.config.host}:{server.config.port}")
        await asyncio.sleep(0.01)
