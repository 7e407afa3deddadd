"""The HTTP API in process (httpx over ASGI) on a real SQLite store and outbox; time from a
ManualClock so link expiry is stepped, not waited for."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.api.app import Api
from plantpulse.api.config import ApiConfig
from plantpulse.notifier.links import link, sign
from plantpulse.notifier.service import ManualClock
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.store.sqlite_outbox import SQLiteOutbox

S = 10**9
T0 = 1_796_083_200 * S
TOKEN = "test-token-0123456789"
SECRET = b"0123456789abcdef0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(tag: str = "line1/weld01/current", at: int = T0) -> AlertEvent:
    return AlertEvent("raised", "weld-current-deviation", tag, "high", at, at, 206.2, "焊接电流偏差 +6.2 A")


@dataclass
class Env:
    client: httpx.AsyncClient
    store: SQLiteStore
    outbox: SQLiteOutbox
    clock: ManualClock
    alert_id: str

    def token(self, person: str = "李娜", nonce: str = "n1", ttl: int = 3600 * S) -> str:
        return sign(SECRET, self.alert_id, person, self.clock.now() + ttl, nonce)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    store, outbox = SQLiteStore(url), SQLiteOutbox(url)
    await store.open()
    await outbox.open()
    ev = event()
    await store.write_alert_events([ev, event("line2/press01/force", T0 + S)], uuid.uuid4().hex,
                                   {ev.alert_id: {"team_lead": ["李娜"]}})  # fmt: skip
    clock = ManualClock(T0 + 10 * S)
    api = Api(store, token=TOKEN, secret=SECRET, outbox=outbox, clock=clock, max_shelve=3600 * S)
    transport = httpx.ASGITransport(app=api.app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://pp.test") as client:
        yield Env(client, store, outbox, clock, ev.alert_id)
    await outbox.close()
    await store.close()


BAD_AUTH = [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}]


@pytest.mark.parametrize("headers", BAD_AUTH)
async def test_every_api_endpoint_needs_the_bearer_token(env: Env, headers: dict[str, str]) -> None:
    one = f"/api/alerts/{env.alert_id}"
    endpoints = [("GET", "/api/health"), ("GET", "/api/alerts"), ("GET", one), ("GET", f"{one}/journal"),
                 ("POST", f"{one}/ack"), ("POST", f"{one}/shelve")]  # fmt: skip
    for method, path in endpoints:
        r = await env.client.request(method, path, headers=headers, json={"by": "x"})
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert (await env.store.alert(env.alert_id)).acked_at is None  # type: ignore[union-attr]


async def test_alerts_filters_and_one_alert_with_its_state(env: Env) -> None:
    r = await env.client.get("/api/health", headers=AUTH)
    assert r.json() == {"status": "ok"}
    r = await env.client.get("/api/alerts", headers=AUTH)
    assert [a["tag"] for a in r.json()["alerts"]] == ["line2/press01/force", "line1/weld01/current"]
    r = await env.client.get("/api/alerts", params={"asset": "line1"}, headers=AUTH)
    assert [a["asset"] for a in r.json()["alerts"]] == ["line1/weld01"]
    r = await env.client.get("/api/alerts", params={"start": str((T0 + S) // S)}, headers=AUTH)
    assert [a["tag"] for a in r.json()["alerts"]] == ["line2/press01/force"]
    r = await env.client.get("/api/alerts", params={"start": "yesterday"}, headers=AUTH)
    assert r.status_code == 400
    r = await env.client.get(f"/api/alerts/{env.alert_id}", headers=AUTH)
    assert r.json()["state"] == "unacknowledged-active"
    assert r.json()["on_shift"] == {"team_lead": ["李娜"]}
    assert (await env.client.get("/api/alerts/nope", headers=AUTH)).status_code == 404


async def test_ack_through_the_api_is_journaled_with_who_where_and_comment(env: Env) -> None:
    body = {"by": "赵敏", "comment": "已停机"}
    r = await env.client.post(f"/api/alerts/{env.alert_id}/ack", headers=AUTH, json=body)
    assert r.status_code == 200
    assert r.json()["acked_by"] == "赵敏" and r.json()["state"] == "acknowledged-active"
    r = await env.client.get(f"/api/alerts/{env.alert_id}/journal", headers=AUTH)
    ack = [e for e in r.json()["journal"] if e["action"] == "acknowledged"]
    detail = {"comment": "已停机", "source": "api from 10.1.2.3"}
    assert ack == [
        {"alert_id": env.alert_id, "at": T0 + 10 * S, "action": "acknowledged", "actor": "赵敏",
         "detail": detail}
    ]
    empty = await env.client.post(f"/api/alerts/{env.alert_id}/ack", headers=AUTH, json={})
    assert empty.status_code == 400
    assert (await env.client.post("/api/alerts/nope/ack", headers=AUTH, json={"by": "x"})).status_code == 404


async def test_shelve_is_capped_by_the_maximum(env: Env) -> None:
    body = {"by": "李娜", "reason": "换焊枪", "duration": "3h"}
    r = await env.client.post(f"/api/alerts/{env.alert_id}/shelve", headers=AUTH, json=body)
    assert r.status_code == 200
    assert r.json()["capped"] is True
    assert r.json()["shelved_until"] == env.clock.now() + 3600 * S
    assert r.json()["state"] == "shelved"
    bad = await env.client.post(
        f"/api/alerts/{env.alert_id}/shelve", headers=AUTH, json={**body, "duration": "x"}
    )
    assert bad.status_code == 400


async def test_link_page_then_acknowledge_once(env: Env) -> None:
    path = link("/ack", env.token())
    page = await env.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "以 李娜 的身份确认此报警?" in page.text or "Acknowledge this alert as 李娜?" in page.text
    zh = await env.client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "以 李娜 的身份确认此报警?" in zh.text
    r = await env.client.post(path, data={"comment": "马上处理"}, headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 200
    assert "已由 李娜 确认" in r.text
    alert = await env.store.alert(env.alert_id)
    assert alert is not None and (alert.acked_by, alert.ack_comment) == ("李娜", "马上处理")
    journal = [e for e in await env.store.journal(env.alert_id) if e.action == "acknowledged"]
    assert [(e.actor, e.detail["source"]) for e in journal] == [("李娜", "link from 10.1.2.3")]
    again = await env.client.post(path)
    assert again.status_code == 409
    assert (await env.client.get(path)).status_code == 409


async def test_forged_and_expired_links_are_refused(env: Env) -> None:
    token = env.token(nonce="n2")
    head, _, sig = token.partition(".")
    forged = f"{head}.{sig[:-2]}{'AA' if not sig.endswith('AA') else 'BB'}"
    other_key = sign(b"another-secret-of-32-bytes-long!", env.alert_id, "李娜", T0 + 3600 * S, "n3")
    for bad in (forged, other_key, "garbage", "x.y"):
        r = await env.client.post(link("/ack", bad))
        assert r.status_code == 403, bad
    expiring = env.token(nonce="n4", ttl=60 * S)
    env.clock.advance(60 * S)
    r = await env.client.post(link("/ack", expiring))
    assert r.status_code == 410
    assert re.search("expired|过期", r.text)
    assert (await env.store.alert(env.alert_id)).acked_at is None  # type: ignore[union-attr]


def test_api_config_checks_listen_and_token() -> None:
    cfg = ApiConfig.model_validate(
        {"listen": "127.0.0.1:8080", "token": TOKEN, "public_url": "https://pp.example/"}
    )
    assert (cfg.host, cfg.port, cfg.ack_base()) == ("127.0.0.1", 8080, "https://pp.example/ack")
    with pytest.raises(ValueError, match="host:port"):
        ApiConfig.model_validate({"listen": "8080", "token": TOKEN})
    with pytest.raises(ValueError, match="16 characters"):
        ApiConfig.model_validate({"token": "short"})
