"""``dashboards push``: folder, data source and dashboards upserted through Grafana's HTTP API.

Idempotent by uid: each object is read first (``GET``), compared with what the plant
generates, and written only when it differs (``created`` / ``updated`` / ``unchanged``);
dashboards are saved with ``overwrite: true`` and a version message, so Grafana's version
history says who generated what. ``--dry-run`` does the reads and the comparison only.

The comparison is pure (``*_change``); ``Api`` is the thin adapter over grafana-client that
turns its errors into one ``GrafanaError`` line each (401, 403, 404, timeouts, refused
connections, server errors), naming the request that failed.

Endpoints (Grafana HTTP API): ``GET /api/health``; ``GET|POST /api/folders``, ``PUT
/api/folders/:uid``; ``GET|PUT /api/datasources/uid/:uid``, ``POST /api/datasources``;
``GET /api/dashboards/uid/:uid``, ``POST /api/dashboards/db``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from plantpulse.errors import PlantPulseError

Status = Literal["created", "updated", "unchanged"]


class GrafanaError(PlantPulseError):
    """Grafana refused or did not answer; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["folder", "datasource", "dashboard"]
    uid: str
    title: str
    status: Status
    changed: tuple[str, ...] = ()  # what differs, for "updated"

    def line(self) -> str:
        what = f" ({', '.join(self.changed)})" if self.changed else ""
        return f"{self.kind:<10} {self.uid:<28} {self.status}{what}  {self.title}"


@dataclass(frozen=True, slots=True)
class Desired:
    folder_uid: str
    folder_title: str
    datasource: dict[str, Any]  # datasource_spec(): no secrets
    password: str | None  # sent when the data source is created or updated
    dashboards: list[dict[str, Any]]


# -- pure comparisons ------------------------------------------------------------------------


def folder_change(existing: dict[str, Any] | None, uid: str, title: str) -> Change:
    if existing is None:
        return Change("folder", uid, title, "created")
    if existing.get("title") != title:
        return Change("folder", uid, title, "updated", ("title",))
    return Change("folder", uid, title, "unchanged")


def datasource_change(existing: dict[str, Any] | None, desired: dict[str, Any], password: bool) -> Change:
    uid, name = desired["uid"], desired["name"]
    if existing is None:
        return Change("datasource", uid, name, "created")
    changed = [k for k in ("name", "type", "access", "url", "user") if existing.get(k) != desired[k]]
    have = existing.get("jsonData") or {}
    changed += [f"jsonData.{k}" for k, v in desired["jsonData"].items() if have.get(k) != v]
    if password and not (existing.get("secureJsonFields") or {}).get("password"):
        changed.append("password")
    return Change("datasource", uid, name, "updated" if changed else "unchanged", tuple(changed))


def dashboard_change(existing: dict[str, Any] | None, desired: dict[str, Any], folder_uid: str) -> Change:
    uid, title = desired["uid"], desired["title"]
    if existing is None:
        return Change("dashboard", uid, title, "created")
    stored = {k: v for k, v in existing.get("dashboard", {}).items() if k not in ("id", "version")}
    changed = sorted(k for k in stored.keys() | desired.keys() if stored.get(k) != desired.get(k))
    if (existing.get("meta") or {}).get("folderUid") != folder_uid:
        changed.append("folder")
    return Change("dashboard", uid, title, "updated" if changed else "unchanged", tuple(changed))


# -- the API adapter -------------------------------------------------------------------------

_HINTS = {
    401: "the token was refused; give a valid service-account token",
    403: "the token may not do this (folders and dashboards need Editor, data sources Admin)",
    404: "no Grafana API there; give Grafana's root URL, e.g. http://grafana:3000",
}


class Api:
    """grafana-client, with every failure translated into a one-line ``GrafanaError``."""

    def __init__(self, url: str, token: str | None, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # grafana-client appends "api" to the URL's path: a trailing slash keeps a sub-path intact
        self._api = GrafanaApi.from_url(self.url + "/", credential=token, timeout=timeout_s)

    @contextmanager
    def _call(self, method: str, path: str, missing_ok: bool = False) -> Iterator[list[bool]]:
        """Run one request; ``found[0]`` turns False when ``missing_ok`` and Grafana says 404."""
        found = [True]
        where = f"{self.url} ({method} /api{path})"
        try:
            yield found
        except GrafanaUnauthorizedError:
            raise GrafanaError(f"grafana: 401 Unauthorized at {where}: {_HINTS[401]}") from None
        except GrafanaTimeoutError:
            raise GrafanaError(f"grafana: no answer from {where} within {self.timeout_s:g} s") from None
        except GrafanaClientError as e:
            if e.status_code == 404 and missing_ok:
                found[0] = False
                return
            reason = {403: "Forbidden", 404: "Not Found"}.get(e.status_code, "")
            hint = _HINTS.get(e.status_code, _message(e))
            raise GrafanaError(
                f"grafana: {e.status_code} {reason} at {where}: {hint}".replace("  ", " ")
            ) from None
        except GrafanaServerError as e:
            raise GrafanaError(f"grafana: {e.status_code} server error at {where}: {_message(e)}") from None
        except niquests.exceptions.ConnectionError as e:
            raise GrafanaError(f"grafana: cannot connect to {self.url}: {_reason(e)}") from None
        except GrafanaException as e:
            raise GrafanaError(f"grafana: {where} failed: {_message(e)}") from None

    def _get(self, path: str, fetch: Callable[[], Any]) -> dict[str, Any] | None:
        result: dict[str, Any] | None = None
        with self._call("GET", path, missing_ok=True) as found:
            result = fetch()
        return result if found[0] else None

    def health(self) -> None:
        with self._call("GET", "/health"):
            self._api.client.GET("/health")

    def folder(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"/folders/{uid}", lambda: self._api.folder.get_folder(uid))

    def create_folder(self, uid: str, title: str) -> None:
        with self._call("POST", "/folders"):
            self._api.folder.create_folder(title, uid=uid)

    def update_folder(self, uid: str, title: str) -> None:
        with self._call("PUT", f"/folders/{uid}"):
            self._api.folder.update_folder(uid, title=title, overwrite=True)

    def datasource(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"/datasources/uid/{uid}", lambda: self._api.datasource.get_datasource_by_uid(uid))

    def create_datasource(self, payload: dict[str, Any]) -> None:
        with self._call("POST", "/datasources"):
            self._api.datasource.create_datasource(payload)

    def update_datasource(self, uid: str, payload: dict[str, Any]) -> None:
        with self._call("PUT", f"/datasources/uid/{uid}"):
            self._api.datasource.update_datasource_by_uid(uid, payload)

    def dashboard(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"/dashboards/uid/{uid}", lambda: self._api.dashboard.get_dashboard(uid))

    def save_dashboard(self, dashboard: dict[str, Any], folder_uid: str, message: str) -> None:
        body = {"dashboard": dashboard, "folderUid": folder_uid, "overwrite": True, "message": message}
        with self._call("POST", "/dashboards/db"):
            self._api.dashboard.update_dashboard(body)


def _message(e: GrafanaException) -> str:
    r = e.response
    text = r.get("message") if isinstance(r, dict) else r
    return " ".join(str(text or e.message).split())


def _reason(e: Exception) -> str:
    inner: BaseException = e
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return "connection refused" if "refused" in text.lower() else " ".join(text.split())[:200]


# -- the push --------------------------------------------------------------------------------


def push(api: Api, desired: Desired, *, dry_run: bool, message: str) -> list[Change]:
    """Compare every object with Grafana and, unless ``dry_run``, write what differs."""
    api.health()
    changes: list[Change] = []

    folder = folder_change(api.folder(desired.folder_uid), desired.folder_uid, desired.folder_title)
    changes.append(folder)
    if not dry_run and folder.status == "created":
        api.create_folder(desired.folder_uid, desired.folder_title)
    elif not dry_run and folder.status == "updated":
        api.update_folder(desired.folder_uid, desired.folder_title)

    ds_uid = desired.datasource["uid"]
    ds = datasource_change(api.datasource(ds_uid), desired.datasource, desired.password is not None)
    changes.append(ds)
    if not dry_run and ds.status != "unchanged":
        payload = dict(desired.datasource)
        if desired.password is not None:
            payload["secureJsonData"] = {"password": desired.password}
        if ds.status == "created":
            api.create_datasource(payload)
        else:
            api.update_datasource(ds_uid, payload)

    for dash in desired.dashboards:
        change = dashboard_change(api.dashboard(dash["uid"]), dash, desired.folder_uid)
        changes.append(change)
        if not dry_run and change.status != "unchanged":
            api.save_dashboard(dash, desired.folder_uid, message)
    return changes
