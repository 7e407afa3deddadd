"""Approvals over HTTP: a bearer-token JSON API and a small server-rendered page with the board.

    GET  /api/changes                   every change, newest first: id, status, by, files, waiting level
    GET  /api/changes/log               ?rule=ID &verify=1 &format=json|csv|html
    GET  /api/changes/{id}              one change: files, per-rule diffs, predicted load, approvals
    POST /api/changes                   {"by", "reason", "files": {"rules/weld.yaml": "<text>"}, "days"?,
                                         "emergency"?}: propose (201)
    POST /api/changes/{id}/approve      {"by", "comment"?}
    POST /api/changes/{id}/reject       {"by", "reason"}

    GET  /approvals                     the page: changes, newest first
    GET  /approvals/{id}                one change, with a form to approve or reject it
    POST /approvals/{id}                that form (by, text, action, and the API token)
    GET  /approvals/log                 the change log, verified, printable (?format=csv)

``/api/*`` needs ``Authorization: Bearer <api.token>`` like the rest of the API. The pages are
read-only without a token, like the board; the form carries the API token in a password
field, compared in constant time, because a browser form cannot send the header. A request the
approval rules refuse answers 409 with ``{"error": "<one line>"}`` (the page: the same line);
invalid files 400 with every ``problems`` line; an unknown change 404.
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from plantpulse.api.app import _client, text_problem
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.changes import Change, History
from plantpulse.approvals.holders import holders
from plantpulse.approvals.log import verify
from plantpulse.approvals.render import (
    change_brief,
    change_json,
    change_lines,
    html_page,
    log_csv,
    log_html,
    log_rows,
    status_line,
)
from plantpulse.approvals.service import Plant, Refused, decide, history, propose, read_witness
from plantpulse.errors import ConfigError
from plantpulse.notifier.clock import Clock
from plantpulse.store.base import Store

__all__ = ["ApprovalsApi"]

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ApprovalsApi:
    plant: Plant
    log: ChangeLog
    store: Store
    clock: Clock
    token: bytes

    def routes(self, authed: Callable[[Handler], Handler]) -> Sequence[BaseRoute]:
        return [
            Route("/api/changes", authed(self.list_json), methods=["GET"]),
            Route("/api/changes", authed(self.propose_json), methods=["POST"]),
            Route("/api/changes/log", authed(self.log_export), methods=["GET"]),
            Route("/api/changes/{id:int}", authed(self.change_json), methods=["GET"]),
            Route("/api/changes/{id:int}/approve", authed(self.approve_json), methods=["POST"]),
            Route("/api/changes/{id:int}/reject", authed(self.reject_json), methods=["POST"]),
            Route("/approvals", self.page_list, methods=["GET"]),
            Route("/approvals/log", self.page_log, methods=["GET"]),
            Route("/approvals/{id:int}", self.page_change, methods=["GET"]),
            Route("/approvals/{id:int}", self.page_decide, methods=["POST"]),
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _clock_text(self) -> Callable[[int], str]:
        from plantpulse.people.roster import Roster

        roster = Roster(self.plant.team, self.plant.loaded.plant.site.timezone)
        return lambda ns: roster.local(ns).isoformat(sep=" ", timespec="seconds")

    def _holders(self, role: str) -> list[str]:
        return holders(self.plant.team, role)

    @staticmethod
    async def _body(request: Request) -> Mapping[str, Any] | None:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def _decide(
        self, cid: int, by: str, approve: bool, text: str | None, source: str
    ) -> tuple[int, dict[str, Any]]:
        if (problem := text_problem({"by": by, "text": text})) is not None:
            return 400, {"error": problem}
        h, _ = await history(self.log)
        if cid not in h.changes:
            return 404, {"error": f"no change #{cid}"}
        try:
            await decide(
                self.plant,
                self.log,
                cid,
                by=by,
                approve=approve,
                text=text,
                now=self.clock.now(),
                source=source,
            )
        except Refused as e:
            return 409, {"error": str(e)}
        h, _ = await history(self.log)
        return 200, change_json(h, h.changes[cid])

    # -- JSON ---------------------------------------------------------------------------------

    async def list_json(self, request: Request) -> Response:
        h, _ = await history(self.log)
        return JSONResponse(
            {"changes": [change_brief(h, c) for c in sorted(h.changes.values(), key=lambda c: -c.id)]}
        )

    async def change_json(self, request: Request) -> Response:
        h, _ = await history(self.log)
        c = h.changes.get(request.path_params["id"])
        if c is None:
            return JSONResponse({"error": f"no change #{request.path_params['id']}"}, 404)
        return JSONResponse(change_json(h, c))

    async def propose_json(self, request: Request) -> Response:
        data = await self._body(request)
        files = data.get("files") if data else None
        if (
            data is None
            or not isinstance(data.get("by"), str)
            or not isinstance(data.get("reason"), str)
            or not isinstance(files, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        ):
            return JSONResponse(
                {"error": 'body must be JSON with "by", "reason" and "files": {name: text}'}, 400
            )
        if (problem := text_problem({"by": data["by"], "reason": data["reason"]})) is not None:
            return JSONResponse({"error": problem}, 400)
        days = data.get("days")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
            return JSONResponse({"error": "days is a whole number"}, 400)
        try:
            c = await propose(
                self.plant, self.log, self.store, [], by=data["by"], reason=data["reason"],
                now=self.clock.now(), days=days, emergency=bool(data.get("emergency", False)), texts=files,
                source=f"api from {_client(request)}",
            )  # fmt: skip
        except Refused as e:
            return JSONResponse({"error": str(e)}, 409)
        except ConfigError as e:
            return JSONResponse({"error": "invalid files", "problems": [str(p) for p in e.problems]}, 400)
        h, _ = await history(self.log)
        return JSONResponse(change_json(h, h.changes[c.id]), 201)

    async def approve_json(self, request: Request) -> Response:
        data = await self._body(request)
        if data is None or not isinstance(data.get("by"), str) or not data["by"].strip():
            return JSONResponse({"error": 'body must be JSON with "by" (who approves)'}, 400)
        comment = data.get("comment")
        status, body = await self._decide(
            request.path_params["id"], data["by"].strip(), True, str(comment) if comment else None,
            f"api from {_client(request)}",
        )  # fmt: skip
        return JSONResponse(body, status)

    async def reject_json(self, request: Request) -> Response:
        data = await self._body(request)
        if data is None or not isinstance(data.get("by"), str) or not isinstance(data.get("reason"), str):
            return JSONResponse({"error": 'body must be JSON with "by" and "reason"'}, 400)
        status, body = await self._decide(
            request.path_params["id"],
            data["by"].strip(),
            False,
            data["reason"],
            f"api from {_client(request)}",
        )
        return JSONResponse(body, status)

    async def log_export(self, request: Request) -> Response:
        q = request.query_params
        h, records = await history(self.log)
        rows = log_rows(h, records, q.get("rule") or None)
        want_verify = q.get("verify", "").lower() in ("1", "true", "yes")
        findings = verify(records, read_witness(self.plant.witness_file)) if want_verify else None
        fmt = q.get("format", "json")
        clock = self._clock_text()
        if fmt == "csv":
            return Response(log_csv(rows, clock), media_type="text/csv; charset=utf-8")
        if fmt == "html":
            return HTMLResponse(self._log_page(rows, findings, records))
        body: dict[str, Any] = {
            "records": [
                {"seq": r.seq, "at": r.at, "change": r.change, "action": r.action, "actor": r.actor,
                 "summary": r.summary, "hash": r.hash}
                for r in rows
            ]
        }  # fmt: skip
        if findings is not None:
            body["verified"] = not findings
            body["findings"] = [str(f) for f in findings]
        return JSONResponse(body)

    def _log_page(self, rows: Any, findings: Any, records: Any) -> str:
        head = f"{records[-1].seq}:{records[-1].hash}" if records else "empty"
        title = f"{self.plant.loaded.plant.site.name}: change log"
        return log_html(rows, self._clock_text(), title=title, findings=findings, head=head)

    # -- pages --------------------------------------------------------------------------------

    async def page_list(self, request: Request) -> Response:
        h, _ = await history(self.log)
        e = html.escape
        clock = self._clock_text()
        rows = "".join(
            f'<tr><td><a href="/approvals/{c.id}">#{c.id}</a></td><td>{e(clock(c.at))}</td><td>{e(c.by)}</td>'
            f"<td>{e(', '.join(v.file for v in c.files))}</td>"
            f"<td>{e(status_line(h, c, self._holders))}</td></tr>"
            for c in sorted(h.changes.values(), key=lambda c: -c.id)
        )
        body = (
            f"<h1>{e(self.plant.loaded.plant.site.name)}: rule and KPI changes</h1>"
            '<p><a href="/approvals/log">change log (verified, printable)</a></p>'
            "<table><tr><th>change</th><th>proposed</th><th>by</th><th>files</th><th>status</th></tr>"
            f"{rows}</table>"
        )
        return HTMLResponse(html_page("approvals", body))

    def _change_page(self, h: History, c: Change, note: str = "") -> str:
        e = html.escape
        lines = change_lines(h, c, self._clock_text(), self._holders)
        diff = "".join(f"<h3>{e(d.file)}</h3><pre>{e(chr(10).join(d.text))}</pre>" for d in c.diffs)
        form = ""
        if c.chain is not None and c.chain.outcome == "pending":
            form = (
                f'<form method="post"><h2>Decide ({e(c.chain.where())})</h2>'
                '<p><label>Name <input name="by" required></label></p>'
                '<p><label>Comment or reason <input name="text" size="60"></label></p>'
                '<p><label>API token <input name="token" type="password" required></label></p>'
                '<p><button name="action" value="approve">Approve</button> '
                '<button name="action" value="reject">Reject</button></p></form>'
            )
        body = (
            f'<p><a href="/approvals">all changes</a></p><h1>Change #{c.id}</h1>{note}'
            f"<pre>{e(chr(10).join(lines))}</pre>{diff}{form}"
        )
        return html_page(f"change #{c.id}", body)

    async def page_change(self, request: Request) -> Response:
        h, _ = await history(self.log)
        c = h.changes.get(request.path_params["id"])
        if c is None:
            return HTMLResponse(html_page("approvals", "<p>No such change.</p>"), 404)
        return HTMLResponse(self._change_page(h, c))

    async def page_decide(self, request: Request) -> Response:
        cid = request.path_params["id"]
        try:
            form = {
                k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8"), errors="strict").items()
            }
        except ValueError:
            form = {}
        given = form.get("token", "").encode("utf-8")
        if not hmac.compare_digest(given, self.token):
            return HTMLResponse(html_page("approvals", "<p>Wrong API token: nothing was recorded.</p>"), 403)
        action = form.get("action")
        by = form.get("by", "").strip()
        if action not in ("approve", "reject") or not by:
            return HTMLResponse(html_page("approvals", "<p>Give your name and approve or reject.</p>"), 400)
        status, body = await self._decide(
            cid, by, action == "approve", form.get("text") or None, f"page from {_client(request)}"
        )
        h, _ = await history(self.log)
        c = h.changes.get(cid)
        if c is None:
            return HTMLResponse(html_page("approvals", "<p>No such change.</p>"), 404)
        note = (
            f'<p class="{"ok" if status == 200 else "bad"}">{html.escape(body.get("error", "Recorded."))}</p>'
        )
        return HTMLResponse(self._change_page(h, c, note), status)

    async def page_log(self, request: Request) -> Response:
        h, records = await history(self.log)
        rows = log_rows(h, records, request.query_params.get("rule") or None)
        if request.query_params.get("format") == "csv":
            return Response(log_csv(rows, self._clock_text()), media_type="text/csv; charset=utf-8")
        findings = verify(records, read_witness(self.plant.witness_file))
        return HTMLResponse(self._log_page(rows, findings, records))
