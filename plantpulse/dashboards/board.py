"""The built-in shop-floor board: pages, their event streams, and acknowledging with a PIN.

    GET  /                          the default screen (``boards.default``)
    GET  /board/{name}              a screen: one self-contained page (no CDN: plants are offline)
    GET  /board/{name}/state        the screen's full frame (JSON)
    GET  /board/{name}/events       server-sent events: ``full`` first, then updates, ``ping``s
    POST /board/{name}/ack          {"alert", "person", "pin", "comment"?}      screens with acknowledge
    POST /board/{name}/shelve       {"alert", "person", "pin", "reason", "duration"}
    GET  /board/_/{file}            the page's script and style

Choices, and why:
- Fan-out is one ``_Hub`` per watched screen: it wakes when the state changes, builds the
  update once (the tags changed since its previous one), at most every ``refresh``, and every
  page of that screen gets the same bytes. A hub keeps its last ``KEEP`` updates; a page that
  falls further behind gets a new full frame instead of a growing queue. No page: no hub.
- A page gets a ``full`` frame on every (re)connect, so a restarted server needs nothing from
  it. ``ping`` every ``ping`` seconds carries the server's clock: the page tells "server
  unreachable" (no ping) from "data stale" (pings, but old values) and measures ages with
  the server's clock, not the TV's.
- Reading needs no login. Acknowledge and shelve go through ``AlertActions`` (the HTTP API's
  own path, so the journal and the escalation see a board acknowledgement like any other),
  by a person named in the request whose PIN matches (``pins.py``: constant-time, rate-limited
  per person and per client address, checked in a worker thread, never logged). Requests must
  be JSON: a page of another site cannot post to the board without CORS consent.
- While pages watch, the alerts held are compared with the store every ``sync`` seconds, so an
  acknowledgement from a phone link, the CLI or another process reaches the screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from plantpulse.alerts import Alert
from plantpulse.dashboards.pins import PinGuard, verify_pin
from plantpulse.dashboards.state import BoardState, Screen
from plantpulse.errors import StoreError
from plantpulse.store.base import Store
from plantpulse.timefmt import parse_duration

log = logging.getLogger(__name__)

KEEP = 16
"""Updates a hub keeps for pages that are a little behind."""
MAX_BODY = 4096
NS_PER_S = 10**9
_ASSETS = ("board.js", "board.css")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


class AlertActions(Protocol):
    """What the board needs of the HTTP API (``plantpulse.api.app.Api``)."""

    store: Store

    async def acknowledge(self, alert_id: str, by: str, comment: str | None, source: str) -> Alert | None: ...

    async def shelve_alert(
        self, aid: str, by: str, reason: str, duration: int
    ) -> tuple[Alert | None, bool]: ...


def _read(name: str) -> str:
    return files("plantpulse.dashboards").joinpath(name).read_text(encoding="utf-8")


def _encode(event: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


@dataclass
class _Update:
    seq: int
    data: bytes
    layout: bool = False  # the screen's tags changed: pages need a full frame


class _Hub:
    """Builds one screen's updates while pages watch it and hands the same bytes to all."""

    def __init__(self, board: BoardServer, screen: Screen) -> None:
        self.board = board
        self.screen = screen
        self.updates: deque[_Update] = deque(maxlen=KEEP)
        self.seq = 0
        self.pages = 0
        self._next = asyncio.Event()  # set (and replaced) at every update: no lock to hold
        self._task: asyncio.Task[None] | None = None

    def join(self) -> None:
        self.pages += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"board hub {self.screen.name}")

    def leave(self) -> None:
        self.pages -= 1

    def _publish(self, data: bytes, layout: bool = False) -> None:
        self.seq += 1
        self.updates.append(_Update(self.seq, data, layout))
        self.poke()

    def poke(self) -> None:
        """Wake every page waiting in ``after``."""
        woken, self._next = self._next, asyncio.Event()
        woken.set()

    async def after(self, seq: int, within: float) -> list[_Update] | None:
        """Updates after ``seq`` (waiting up to ``within`` s); None when there are none; an
        empty list when some were missed (the page needs a full frame)."""
        if self.seq <= seq and not self.board.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next.wait(), within)
        if self.seq <= seq or self.board.closed:
            return None
        if self.updates[0].seq > seq + 1:
            return []
        return [u for u in self.updates if u.seq > seq]

    async def _run(self) -> None:
        state, screen = self.board.state, self.screen
        wake = asyncio.Event()
        stop = state.listen(wake.set)
        since, layout = state.version, screen.layout
        sent: dict[str, str] = {}  # the alerts, KPI tiles and people on shift pages have
        shift_at = -math.inf
        try:
            while self.pages > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)  # at least every second: ages, shelves
                wake.clear()
                now = self.board.clock()
                if screen.layout != layout:
                    layout, since = screen.layout, state.version
                    self._publish(b"", layout=True)
                    continue
                frame: dict[str, Any] = state.delta(screen, since, now)
                since = state.version
                parts: dict[str, Any] = {
                    "alerts": state.alert_list(screen, now),
                    "kpis": state.kpi_tiles(screen),
                }
                if time.monotonic() - shift_at > 30:  # the roster changes at shift boundaries
                    parts["on_shift"], shift_at = state.on_shift_of(screen, now), time.monotonic()
                for key, value in parts.items():
                    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
                    if sent.get(key) != text:
                        sent[key], frame[key] = text, value
                if frame["values"] or frame.keys() & parts.keys():
                    self._publish(_encode("update", frame))
                await asyncio.sleep(screen.config.refresh / NS_PER_S)  # the screen's cadence
        finally:
            stop()


class BoardServer:
    """The board's routes over one ``BoardState``; ``actions`` None makes every screen read-only."""

    def __init__(
        self,
        state: BoardState,
        actions: AlertActions | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        ping: float = 5.0,
        sync: float = 5.0,
    ) -> None:
        self.state = state
        self.actions = actions
        self.clock = clock
        self.ping = ping
        self.sync = sync
        self.hubs: dict[str, _Hub] = {}
        self.person_guard = PinGuard(failures=5)
        self.client_guard = PinGuard(failures=20)
        self._checking = asyncio.Semaphore(2)  # PIN derivations at once: CPU is bounded too
        self._syncing: asyncio.Task[None] | None = None
        self.closed = False
        self._page = _read("board.html")
        self.assets = {name: _read(name) for name in _ASSETS}
        digest = hashlib.sha256("".join([self._page, *self.assets.values()]).encode()).hexdigest()
        self.build = digest[:12]

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/board/_/{file}", self.asset, methods=["GET"]),
            Route("/board/{name}", self.page, methods=["GET"]),
            Route("/board/{name}/state", self.snapshot, methods=["GET"]),
            Route("/board/{name}/events", self.events, methods=["GET"]),
            Route("/board/{name}/ack", self.ack, methods=["POST"]),
            Route("/board/{name}/shelve", self.shelve, methods=["POST"]),
        ]

    async def end_streams(self) -> None:
        """End every event stream (the server is stopping; pages reconnect to the next one)."""
        self.closed = True
        for hub in self.hubs.values():
            hub.poke()

    # -- pages --------------------------------------------------------------------------------

    def _html(self, screen: Screen, base: str, static: str) -> HTMLResponse:
        cfg = self.state.boards
        lang = screen.config.language or self.state.language
        title = (
            self.state.site if screen.config.title is None else f"{screen.config.title} · {self.state.site}"
        )
        page = (
            self._page.replace("{{lang}}", "zh-CN" if lang == "zh" else "en")
            .replace("{{title}}", html.escape(title))
            .replace("{{base}}", html.escape(base))
            .replace("{{static}}", html.escape(static))
            .replace("{{build}}", self.build)
            .replace("{{stale_ms}}", str(cfg.stale_after // 1_000_000))
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def index(self, request: Request) -> Response:
        name = self.state.boards.default_screen
        return self._html(self.state.screens[name], f"board/{name}/", "board/_/")

    async def page(self, request: Request) -> Response:
        screen = self.state.screen(request.path_params["name"])
        if screen is None:
            links = "".join(f'<li><a href="{n}">{n}</a></li>' for n in self.state.screens)  # [A-Za-z0-9_-]
            return HTMLResponse(
                f"<!doctype html><meta charset=utf-8><p>No such screen.</p><ul>{links}</ul>", 404
            )
        return self._html(screen, f"{screen.name}/", "_/")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in self.assets:
            return Response("not found", 404)
        etag = f'"{self.build}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(self.assets[name], media_type=_TYPES[name.rpartition(".")[2]], headers={"ETag": etag})

    async def snapshot(self, request: Request) -> Response:
        screen = self.state.screen(request.path_params["name"])
        if screen is None:
            return JSONResponse({"error": "no such screen"}, 404)
        return JSONResponse({**self.state.full(screen, self.clock()), "build": self.build})

    async def events(self, request: Request) -> Response:
        screen = self.state.screen(request.path_params["name"])
        if screen is None:
            return JSONResponse({"error": "no such screen"}, 404)
        hub = self.hubs.get(screen.name)
        if hub is None:
            hub = self.hubs[screen.name] = _Hub(self, screen)

        request.app.state.end_streams = self.end_streams  # httpserve.serving calls it on exit

        async def stream() -> AsyncIterator[bytes]:
            hub.join()
            self._start_sync()
            try:
                seq = hub.seq
                yield b"retry: 1000\n" + _encode(
                    "full", {**self.state.full(screen, self.clock()), "build": self.build}
                )
                while not self.closed:
                    got = await hub.after(seq, self.ping)
                    if self.closed:
                        return
                    if got is None:
                        yield _encode("ping", {"now": self.clock() // 1_000_000})
                        continue
                    seq = hub.seq if not got else got[-1].seq
                    if not got or any(u.layout for u in got):
                        yield _encode("full", {**self.state.full(screen, self.clock()), "build": self.build})
                    else:
                        yield b"".join(u.data for u in got)
            finally:
                hub.leave()

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    # -- alerts from elsewhere ----------------------------------------------------------------

    def _start_sync(self) -> None:
        if self.actions is not None and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.create_task(self._sync_loop(), name="board alert sync")

    async def _sync_loop(self) -> None:
        assert self.actions is not None
        store, down = self.actions.store, False
        while any(h.pages > 0 for h in self.hubs.values()):
            held = [a.raised_at for a in self.state.alerts.values()]
            try:
                got = await store.alerts(active_only=True, limit=500)
                if held:
                    got += await store.alerts(min(held), None, limit=1000)
            except StoreError as e:
                if not down:
                    log.warning("board: cannot read alerts from the store (%s); retrying", e)
                down = True
            else:
                if down:
                    log.info("board: reading alerts from the store again")
                down = False
                self.state.sync_alerts(got, self.clock())
            await asyncio.sleep(self.sync)  # the polling period, not synchronisation

    # -- acknowledge and shelve ---------------------------------------------------------------

    async def _request(
        self, request: Request, need: tuple[str, ...]
    ) -> tuple[Screen, dict[str, str]] | Response:
        """The screen and the JSON body's text fields, or the refusal."""
        from plantpulse.api.app import text_problem  # the API's rule for people's text

        screen = self.state.screen(request.path_params["name"])
        if screen is None:
            return JSONResponse({"error": "no such screen"}, 404)
        if self.actions is None or not screen.config.acknowledge or not self.state.pins:
            return JSONResponse({"error": "this screen is read-only"}, 403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, 415)
        raw = await request.body()
        try:
            data = json.loads(raw) if len(raw) <= MAX_BODY else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or any(
            not isinstance(data.get(k), str) or not data[k].strip() for k in need
        ):
            return JSONResponse({"error": f"body must be JSON with {', '.join(need)}"}, 400)
        fields = {k: v.strip() if k != "pin" else v for k, v in data.items() if isinstance(v, str)}
        if (problem := text_problem({k: v for k, v in fields.items() if k != "pin"})) is not None:
            return JSONResponse({"error": problem}, 400)
        return screen, fields

    async def _identify(self, request: Request, person: str, pin: str) -> Response | None:
        """None when ``pin`` is ``person``'s; else the refusal (403, or 429 while locked)."""
        client = request.client.host if request.client is not None else "unknown"
        pkey, ckey = f"person:{person}", f"client:{client}"
        now = self.clock()
        wait = max(self.person_guard.wait((pkey,), now), self.client_guard.wait((ckey,), now))
        if wait > 0:
            secs = -(-wait // NS_PER_S)
            return JSONResponse(
                {"error": "too many wrong PINs", "retry_after": secs}, 429, {"Retry-After": str(secs)}
            )
        async with self._checking:
            ok = await asyncio.to_thread(verify_pin, self.state.pins.get(person), pin)
        if not ok:
            now = self.clock()
            self.person_guard.failed((pkey,), now)
            self.client_guard.failed((ckey,), now)
            log.warning("board: wrong person or PIN for %r from %s", person, client)
            return JSONResponse({"error": "wrong person or PIN"}, 403)
        self.person_guard.succeeded(pkey)
        return None

    def _source(self, request: Request, screen: Screen) -> str:
        client = request.client.host if request.client is not None else "unknown"
        return f"board {screen.name} from {client}"

    def _answer(self, alert: Alert | None, **extra: Any) -> Response:
        if alert is None:
            return JSONResponse({"error": "no such alert"}, 404)
        now = self.clock()
        self.state.observe_alert(alert, now)
        return JSONResponse(
            {"id": alert.id, "state": alert.state(now).value, "acked_by": alert.acked_by, **extra}
        )

    async def ack(self, request: Request) -> Response:
        got = await self._request(request, ("alert", "person", "pin"))
        if isinstance(got, Response):
            return got
        screen, data = got
        if (refused := await self._identify(request, data["person"], data["pin"])) is not None:
            return refused
        assert self.actions is not None
        comment = data.get("comment") or None
        alert = await self.actions.acknowledge(
            data["alert"], data["person"], comment, self._source(request, screen)
        )
        return self._answer(alert)

    async def shelve(self, request: Request) -> Response:
        got = await self._request(request, ("alert", "person", "pin", "reason", "duration"))
        if isinstance(got, Response):
            return got
        _screen, data = got
        try:
            duration = parse_duration(data["duration"])
        except ValueError as e:
            return JSONResponse({"error": str(e)}, 400)
        if (refused := await self._identify(request, data["person"], data["pin"])) is not None:
            return refused
        assert self.actions is not None
        alert, capped = await self.actions.shelve_alert(
            data["alert"], data["person"], data["reason"], duration
        )
        return self._answer(alert, capped=capped)


def board_routes(state: BoardState, actions: AlertActions | None = None, **options: Any) -> list[Route]:
    """The board's routes (``BoardServer(state, actions, **options).routes``)."""
    return BoardServer(state, actions, **options).routes


__all__ = ["AlertActions", "BoardServer", "board_routes"]
