"""The HTTP API (ASGI, starlette): acknowledge links for phones, and a bearer-token API.

    GET  /ack/{token}                 confirmation page (zh/en, UTF-8) with a comment field
    POST /ack/{token}                 acknowledge: 200 ok, 403 forged, 410 expired, 409 used
    GET  /api/health                  status and notifier counters (kept; probes use the two below)
    GET  /api/health/live             200 while the process and its event loop answer (no token)
    GET  /api/health/ready            200 ready / 503 not, naming what is not (no token; plantpulse.observe)
    GET  /metrics                     Prometheus text format (API token or api.metrics_token)
    GET  /api/alerts                  ?since= &until= &state= &rule= &asset= &limit= (plantpulse.alertquery)
    GET  /api/alerts/{id}             one alert with its ISA-18.2 state
    GET  /api/alerts/{id}/journal     its journal, oldest first
    POST /api/alerts/{id}/ack         {"by", "comment"?}
    POST /api/alerts/{id}/shelve      {"by", "reason", "duration"} (capped by max_shelve)
    ...                               ``routes``: more, e.g. rule approvals (plantpulse/approvals/api.py)

Times in responses are ISO-8601 UTC with milliseconds and ``Z``; each also comes as
``<name>_ns`` (Unix nanoseconds, exact). Query parameters are checked strictly: an unknown,
repeated or malformed one is a 400 whose ``error`` is one line for a person.

The link is the credential of ``/ack``: anyone holding it may acknowledge as its person until
it expires, once (the nonce is spent before the acknowledgement, so two taps cannot both
succeed). Everything under ``/api`` but the two health probes needs ``Authorization: Bearer
<token>``, compared in constant time. Acknowledgements are journaled with who (the link's
person or ``by``), when, from where (``source`` = "link from <client address>" / "api from
<client address>") and the comment. With a notifier they are recorded in its local outbox first
(a link's nonce in the same transaction), stop the escalation before the answer is sent, and
reach the store as soon as it takes them: while it is unreachable the answer (HTTP 200) shows
the alert as the notifier knows it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from plantpulse.alertquery import QueryError, alert_record, journal_record, parse_query, select
from plantpulse.alerts import Alert
from plantpulse.api.auth import bearer_ok, unauthorized
from plantpulse.dashboards.board import board_routes
from plantpulse.dashboards.state import BoardState
from plantpulse.errors import StoreError
from plantpulse.notifier.clock import Clock, SystemClock
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.links import Verdict, verify
from plantpulse.notifier.outbox import Ack, Outbox
from plantpulse.observe.parts import Observed
from plantpulse.observe.routes import observe_routes
from plantpulse.people.schema import Language, TeamConfig
from plantpulse.store.base import Store
from plantpulse.timefmt import parse_duration

Handler = Callable[[Request], Awaitable[Response]]

_STATUS = {"forged": 403, "expired": 410, "used": 409}
_TEXT: dict[Language, dict[str, str]] = {
    "en": {
        "title": "Acknowledge alert",
        "ask": "Acknowledge this alert as {person}?",
        "comment": "Comment (optional)",
        "button": "Acknowledge",
        "done": "Acknowledged by {by}.",
        "already": "Already acknowledged by {by}.",
        "forged": "This link is not valid.",
        "expired": "This link has expired. Acknowledge on the board instead.",
        "used": "This link has been used already.",
        "unknown": "No such alert.",
        "invalid": "The comment contains a character that is not allowed (a control character). "
        "Remove it and try again; the link is still valid.",
    },
    "zh": {
        "title": "确认报警",
        "ask": "以 {person} 的身份确认此报警?",
        "comment": "备注(可选)",
        "button": "确认",
        "done": "已由 {by} 确认。",
        "already": "此报警已由 {by} 确认。",
        "forged": "此链接无效。",
        "expired": "此链接已过期,请在看板上确认。",
        "used": "此链接已使用过。",
        "unknown": "没有这条报警。",
        "invalid": "备注中有不允许的字符(控制字符)。请删除后重试,链接仍然有效。",
    },
}


_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (C0 but tab, LF and CR; DEL; C1) and lone surrogates: never part of a
name or a comment, and a NUL is refused by PostgreSQL's text type."""


def text_problem(fields: Mapping[str, object]) -> str | None:
    """The first field whose text holds a character ``_NOT_TEXT`` refuses, as a message.

    Checked at the top of every handler that writes people's text, before a link's one-time
    nonce is spent, so a bad request changes nothing and the link can be used again."""
    for name, value in fields.items():
        m = _NOT_TEXT.search(value) if isinstance(value, str) else None
        if m is not None:
            return (
                f"{name}: character U+{ord(m.group()):04X} is not allowed"
                " (no control characters; tab and newline are fine)"
            )
    return None


_alert_json = alert_record  # every handler answers with the same record


def _no_query(request: Request) -> Response | None:
    """A 400 for an endpoint that takes no query parameters and was given some."""
    if not request.query_params:
        return None
    names = ", ".join(sorted(set(request.query_params.keys())))
    return JSONResponse({"error": f"this endpoint takes no query parameters (got {names})"}, 400)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def bearer(token: bytes) -> Callable[[Handler], Handler]:
    """Wrap a handler so it answers 401 unless ``Authorization: Bearer <token>`` (constant time)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            return await handler(request) if bearer_ok(request, token) else unauthorized()

        return guarded

    return wrap


class Api:
    """Holds what the handlers need; ``app`` is the Starlette application."""

    def __init__(
        self,
        store: Store,
        *,
        token: str,
        secret: bytes | Sequence[bytes] | None = None,
        outbox: Outbox | None = None,
        notifier: EscalationNotifier | None = None,
        team: TeamConfig | None = None,
        clock: Clock | None = None,
        max_shelve: int = 8 * 3600 * 10**9,
        board: BoardState | None = None,
        observed: Observed | None = None,
        routes: Callable[[Callable[[Handler], Handler]], Sequence[BaseRoute]] | None = None,
    ) -> None:
        """``routes(authed)``: more routes, given the bearer-token guard of this API."""
        if len(token) < 16:
            raise ValueError("the API token must be at least 16 characters")
        self.store = store
        self._token = token.encode("utf-8")
        self._secret = secret
        self.outbox = outbox
        self.notifier = notifier
        self.team = team
        self.clock: Clock = clock or (notifier.clock if notifier is not None else SystemClock())
        self.max_shelve = max_shelve
        self.app = Starlette(
            routes=[
                Route("/ack/{token}", self.ack_page, methods=["GET"]),
                Route("/ack/{token}", self.ack_link, methods=["POST"]),
                Route("/api/health", self._authed(self.health), methods=["GET"]),
                *(observe_routes(observed, self.authorized) if observed is not None else []),
                Route("/api/alerts", self._authed(self.alerts), methods=["GET"]),
                Route("/api/alerts/{id}", self._authed(self.alert), methods=["GET"]),
                Route("/api/alerts/{id}/journal", self._authed(self.journal), methods=["GET"]),
                Route("/api/alerts/{id}/ack", self._authed(self.ack), methods=["POST"]),
                Route("/api/alerts/{id}/shelve", self._authed(self.shelve), methods=["POST"]),
                # the board's pages need no token; acknowledging there needs a person's PIN
                *(board_routes(board, self) if board is not None else []),
                *(routes(self._authed) if routes is not None else []),
            ]
        )

    # -- auth ---------------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return bearer_ok(request, self._token)

    def _authed(self, handler: Handler) -> Handler:
        return bearer(self._token)(handler)

    # -- acknowledge links --------------------------------------------------------------------

    async def _verdict(self, token: str) -> Verdict:
        if self._secret is None:
            return Verdict("forged")
        v = verify(self._secret, token, self.clock.now())
        if not v.ok or v.claims is None or self.outbox is None:
            return v
        return Verdict("used", v.claims) if await self.outbox.nonce_used(v.claims.nonce) else v

    def _lang(self, request: Request, person: str | None) -> Language:
        if self.team is not None and person is not None and person in self.team.people:
            return self.team.language_of(person)
        accept = request.headers.get("accept-language", "")
        if accept.lower().startswith("zh"):
            return "zh"
        return self.team.language if self.team is not None else "en"

    def _page(self, lang: Language, status: int, body: str) -> HTMLResponse:
        t = _TEXT[lang]
        doc = (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(t['title'])}</title></head><body>{body}</body></html>"
        )
        return HTMLResponse(doc, status, media_type="text/html; charset=utf-8")

    async def ack_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        v = await self._verdict(token)
        person = v.claims.person if v.claims is not None else None
        lang = self._lang(request, person)
        t = _TEXT[lang]
        if not v.ok or v.claims is None:
            return self._page(lang, _STATUS[v.status], f"<p>{html.escape(t[v.status])}</p>")
        alert = await self.store.alert(v.claims.alert_id)
        if alert is None:
            return self._page(lang, 404, f"<p>{html.escape(t['unknown'])}</p>")
        e = html.escape
        info = f"<h1>{e(alert.rule)} @ {e(alert.asset)}</h1><p>{e(alert.message)}</p>"
        if alert.acked_at is not None:
            return self._page(lang, 200, info + f"<p>{e(t['already'].format(by=alert.acked_by))}</p>")
        form = (
            f'<form method="post"><p>{e(t["ask"].format(person=v.claims.person))}</p>'
            f'<label>{e(t["comment"])} <input name="comment" maxlength="500"></label> '
            f'<button type="submit">{e(t["button"])}</button></form>'
        )
        return self._page(lang, 200, info + form)

    async def ack_link(self, request: Request) -> Response:
        comment, problem = await self._comment(request)
        if problem is not None:  # before the nonce is looked at: the link stays usable
            lang = self._lang(request, None)
            return self._page(lang, 400, f"<p>{html.escape(_TEXT[lang]['invalid'])}</p>")
        token = request.path_params["token"]
        v = await self._verdict(token)
        person = v.claims.person if v.claims is not None else None
        lang = self._lang(request, person)
        t = _TEXT[lang]
        if not v.ok or v.claims is None:
            return self._page(lang, _STATUS[v.status], f"<p>{html.escape(t[v.status])}</p>")
        claims = v.claims
        source = f"link from {_client(request)}"
        alert = await self._acknowledge(claims.alert_id, claims.person, comment, source, nonce=claims.nonce)
        if alert == "used":
            return self._page(lang, 409, f"<p>{html.escape(t['used'])}</p>")
        if alert is None:
            return self._page(lang, 404, f"<p>{html.escape(t['unknown'])}</p>")
        key = "done" if alert.acked_by == claims.person else "already"
        return self._page(lang, 200, f"<p>{html.escape(t[key].format(by=alert.acked_by))}</p>")

    @staticmethod
    async def _comment(request: Request) -> tuple[str | None, str | None]:
        """(comment, problem) of a link's form or JSON body; a body that is not text is a problem."""
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        try:
            if ctype.startswith("application/json"):
                data = json.loads(raw or b"{}")
                value = data.get("comment") if isinstance(data, dict) else None
            else:
                values = parse_qs(raw.decode("utf-8"), errors="strict").get("comment")
                value = values[0] if values else None
        except ValueError:  # UnicodeDecodeError included
            return None, "comment: the request body is not UTF-8 form data or JSON"
        comment = str(value)[:500] if value else None
        return comment, text_problem({"comment": comment})

    async def acknowledge(self, alert_id: str, by: str, comment: str | None, source: str) -> Alert | None:
        """The acknowledge path the API and the board share (links add their nonce)."""
        alert = await self._acknowledge(alert_id, by, comment, source)
        return None if alert == "used" else alert

    async def _acknowledge(
        self, alert_id: str, by: str, comment: str | None, source: str, nonce: str | None = None
    ) -> Alert | Literal["used"] | None:
        """Through the notifier (outbox first, escalation stopped, then the store); without one,
        the nonce is spent in the outbox and the store is written directly."""
        if self.notifier is not None:
            if nonce is None:
                return await self.notifier.acknowledge(alert_id, by, comment, source=source)
            return await self.notifier.acknowledge_link(alert_id, by, nonce, comment, source)
        now = self.clock.now()
        recorded = None
        if nonce is not None and self.outbox is not None:
            recorded = await self.outbox.acknowledge(Ack(alert_id, by, now, comment, source), nonce)
            if recorded is None:
                return "used"
        alert = await self.store.acknowledge(alert_id, by, now, comment, source=source)
        if recorded is not None and self.outbox is not None:
            await self.outbox.forwarded(recorded.seq, drop=alert is None)
        return alert

    # -- bearer API ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok"}
        if self.notifier is not None:
            body["notifier"] = {"pending": len(self.notifier.pending), "counts": dict(self.notifier.counts)}
        return JSONResponse(body)

    async def alerts(self, request: Request) -> Response:
        now = self.clock.now()
        try:
            query = parse_query(request.query_params.multi_items(), now, max_limit=1000, default_limit=100)
        except QueryError as e:
            return JSONResponse({"error": str(e)}, 400)
        return JSONResponse({"alerts": [alert_record(a, now) async for a in select(self.store, query, now)]})

    async def alert(self, request: Request) -> Response:
        if (refused := _no_query(request)) is not None:
            return refused
        a = await self.store.alert(request.path_params["id"])
        if a is None:
            return JSONResponse({"error": "no such alert"}, 404)
        return JSONResponse(alert_record(a, self.clock.now()))

    async def journal(self, request: Request) -> Response:
        if (refused := _no_query(request)) is not None:
            return refused
        aid = request.path_params["id"]
        if await self.store.alert(aid) is None:
            return JSONResponse({"error": "no such alert"}, 404)
        return JSONResponse({"journal": [journal_record(e) for e in await self.store.journal(aid)]})

    @staticmethod
    async def _json(request: Request) -> Mapping[str, Any] | None:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def ack(self, request: Request) -> Response:
        data = await self._json(request)
        if data is None or not isinstance(data.get("by"), str) or not data["by"].strip():
            return JSONResponse({"error": 'body must be JSON with "by" (who acknowledges)'}, 400)
        if (problem := text_problem({k: data.get(k) for k in ("by", "comment")})) is not None:
            return JSONResponse({"error": problem}, 400)
        comment = data.get("comment")
        try:
            alert = await self._acknowledge(
                request.path_params["id"], data["by"].strip(), str(comment) if comment else None,
                f"api from {_client(request)}",
            )  # fmt: skip
        except StoreError as e:  # no notifier to record it: the store had to take it now
            return JSONResponse({"error": f"store unavailable: {e}"}, 503)
        if alert is None or alert == "used":
            return JSONResponse({"error": "no such alert"}, 404)
        return JSONResponse(_alert_json(alert, self.clock.now()))

    async def shelve(self, request: Request) -> Response:
        data = await self._json(request)
        need = ("by", "reason", "duration")
        if data is None or any(not data.get(k) for k in need):
            return JSONResponse({"error": 'body must be JSON with "by", "reason" and "duration"'}, 400)
        if (problem := text_problem({k: data.get(k) for k in ("by", "reason")})) is not None:
            return JSONResponse({"error": problem}, 400)
        try:
            duration = parse_duration(data["duration"])
        except (ValueError, TypeError) as e:
            return JSONResponse({"error": str(e)}, 400)
        alert, capped = await self.shelve_alert(
            request.path_params["id"], str(data["by"]), str(data["reason"]), duration
        )
        if alert is None:
            return JSONResponse({"error": "no such alert"}, 404)
        return JSONResponse({**_alert_json(alert, self.clock.now()), "capped": capped})

    async def shelve_alert(self, aid: str, by: str, reason: str, duration: int) -> tuple[Alert | None, bool]:
        """Shelve for ``duration`` ns at most the cap (``max_shelve``, the alert's policy's):
        (the alert, or None when unknown; whether the duration was capped). The API and the
        board share it."""
        current = await self.store.alert(aid)
        if current is None:
            return None, False
        cap = self.max_shelve
        if self.team is not None and (policy := self.team.policy(current.notify)) is not None:
            cap = min(cap, policy.max_shelve)
        now = self.clock.now()
        until = now + min(duration, cap)
        if self.notifier is not None:
            alert = await self.notifier.shelve(aid, by, until, reason)
        else:
            alert = await self.store.shelve(aid, by, now, until, reason)
        return alert, duration > cap


def create_app(store: Store, **kwargs: Any) -> Starlette:
    """``Api(store, **kwargs).app``."""
    return Api(store, **kwargs).app


__all__ = ["Api", "create_app"]
