"""A stand-in for the few Grafana HTTP API endpoints ``dashboards push`` uses (test helper).

No Grafana server can be installed here, so this small server (``http.server`` in a thread, on
a free loopback port) answers as Grafana's HTTP API documentation describes, and records
every request for the tests to check:

- ``GET /api/health`` -> ``{"database": "ok", "version": ...}``, no authentication needed.
- Everything else needs ``Authorization: Bearer <token>``; a wrong one gets 401
  ``{"message": "Invalid API key"}``; an endpoint listed in ``forbidden`` gets 403.
- ``GET /api/folders/:uid`` (404 ``folder not found``), ``POST /api/folders`` ``{uid, title}``,
  ``PUT /api/folders/:uid`` ``{title, overwrite}``.
- ``GET /api/datasources/uid/:uid`` (404; secrets come back only as ``secureJsonFields``),
  ``POST /api/datasources`` -> ``{"datasource", "id", "message": "Datasource added", "name"}``,
  ``PUT /api/datasources/uid/:uid`` -> ``... "Datasource updated"``.
- ``GET /api/dashboards/uid/:uid`` -> ``{"dashboard": {... "id", "version"}, "meta": {"folderUid"}}``
  (404 ``Dashboard not found``); ``POST /api/dashboards/db`` ``{dashboard, folderUid, overwrite,
  message}`` -> ``{"id", "uid", "url", "status": "success", "version", "slug"}``; an existing
  uid without ``overwrite`` and with another version is 412 ``version-mismatch``.

References: https://grafana.com/docs/grafana/v11.6/developers/http_api/ (dashboard, folder,
data_source, other#health-api) and .../developers/http_api/authentication/.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGrafana:
    token: str = "glsa_test_token"
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (method, path prefix) -> 403
    not_found: bool = False  # every path 404s: not a Grafana root URL
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, meta}
    versions: dict[str, list[str]] = field(default_factory=dict)  # uid -> version messages
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]

    # -- the API ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        self.requests.append(Recorded(method, path, auth, body))
        if self.not_found:
            return 404, {"message": "Not found"}
        if (method, path) == ("GET", "/api/health"):
            return 200, {"commit": "test", "database": "ok", "version": "11.6.0"}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Invalid API key", "messageId": "api-key.invalid", "statusCode": 401}
        if any(method == m and path.startswith(p) for m, p in self.forbidden):
            return 403, {
                "message": "You'll need additional permissions to perform this action.",
                "title": "Access denied",
            }
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            return self._folders(method, parts[2:], body)
        if parts[:2] == ["api", "datasources"]:
            return self._datasources(method, parts[2:], body)
        if parts[:2] == ["api", "dashboards"]:
            return self._dashboards(method, parts[2:], body)
        return 404, {"message": "Not found"}

    def _folders(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 1:
            folder = self.folders.get(rest[0])
            return (200, folder) if folder else (404, {"message": "folder not found"})
        if method == "POST" and not rest:
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            uid = body["uid"]
            self.folders[uid] = {
                "id": len(self.folders) + 1,
                "uid": uid,
                "title": body["title"],
                "version": 1,
            }
            return 200, self.folders[body["uid"]]
        if method == "PUT" and len(rest) == 1 and rest[0] in self.folders:
            folder = self.folders[rest[0]]
            folder.update(title=body["title"], version=folder["version"] + 1)
            return 200, folder
        return 404, {"message": "folder not found"}

    def _datasources(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not rest:
            stored = self._store_datasource(body, len(self.datasources) + 1)
            return 200, {
                "datasource": stored,
                "id": stored["id"],
                "message": "Datasource added",
                "name": body["name"],
            }
        if len(rest) == 2 and rest[0] == "uid":
            uid = rest[1]
            if uid not in self.datasources:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, {k: v for k, v in self.datasources[uid].items() if k != "secureJsonData"}
            if method == "PUT":
                old = self.datasources[uid]
                secure = body.get("secureJsonData") or old.get("secureJsonData", {})
                stored = self._store_datasource({**body, "secureJsonData": secure}, old["id"])
                return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource updated",
                             "name": body["name"]}  # fmt: skip
        return 404, {"message": "Not found"}

    def _store_datasource(self, body: dict[str, Any], ds_id: int) -> dict[str, Any]:
        secure = body.get("secureJsonData") or {}
        plain = {k: v for k, v in body.items() if k != "secureJsonData"}
        stored = {
            "id": ds_id, "orgId": 1, "typeLogoUrl": "", "database": "", "basicAuth": False,
            "isDefault": False, "readOnly": False, "version": 1, **plain,
            "secureJsonFields": dict.fromkeys(secure, True), "secureJsonData": secure,
        }  # fmt: skip
        self.datasources[body["uid"]] = stored
        return {k: v for k, v in stored.items() if k != "secureJsonData"}

    def _dashboards(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 2 and rest[0] == "uid":
            found = self.dashboards.get(rest[1])
            return (200, found) if found else (404, {"message": "Dashboard not found"})
        if method == "POST" and rest == ["db"]:
            dash = dict(body["dashboard"])
            uid = dash["uid"]
            old = self.dashboards.get(uid)
            version = old["dashboard"]["version"] if old else 0
            if old and not body.get("overwrite") and dash.get("version") != version:
                return 412, {
                    "message": "The dashboard has been changed by someone else",
                    "status": "version-mismatch",
                }
            dash.update(id=old["dashboard"]["id"] if old else len(self.dashboards) + 1, version=version + 1)
            folder = body.get("folderUid", "")
            self.dashboards[uid] = {"dashboard": dash, "meta": {"folderUid": folder, "version": version + 1}}
            self.versions.setdefault(uid, []).append(body.get("message", ""))
            slug = dash["title"].lower().replace(" ", "-")
            return 200, {"id": dash["id"], "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                         "version": version + 1, "slug": slug}  # fmt: skip
        return 404, {"message": "Not found"}


class _Handler(BaseHTTPRequestHandler):
    grafana: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays clean
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        status, payload = self.grafana.handle(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve


@contextmanager
def serve(grafana: FakeGrafana) -> Iterator[FakeGrafana]:
    """Serve ``grafana`` on a free loopback port for the duration of the block."""
    handler = type("Handler", (_Handler,), {"grafana": grafana})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    grafana.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield grafana
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
