"""Approvals through the HTTP API (bearer token) and the approvals page, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from plantpulse.api.app import Api
from plantpulse.approvals.api import ApprovalsApi
from plantpulse.approvals.changelog import ChangeLog
from plantpulse.approvals.service import Plant, adopt
from plantpulse.config import StoreConfig, load_config
from plantpulse.notifier.clock import ManualClock
from plantpulse.store import open_store
from tests.approvals.helpers import RULES, T0, make_plant

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(
    tmp_path: Path, store_config: StoreConfig, change_log: ChangeLog
) -> AsyncIterator[httpx.AsyncClient]:
    plant = Plant.of(load_config(make_plant(tmp_path, store_config)))
    await adopt(plant, change_log, now=T0)
    store = open_store(store_config)
    await store.open()
    approvals = ApprovalsApi(plant, change_log, store, ManualClock(T0 + 60 * 10**9), TOKEN.encode())
    api = Api(store, token=TOKEN, routes=approvals.routes)
    transport = httpx.ASGITransport(app=api.app, client=("10.1.2.3", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://pp.test") as c:
            yield c
    finally:
        await store.close()


async def test_the_api_needs_the_token(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/api/changes"), ("POST", "/api/changes"), ("GET", "/api/changes/1"),
                         ("POST", "/api/changes/1/approve"), ("POST", "/api/changes/1/reject"),
                         ("GET", "/api/changes/log")]:  # fmt: skip
        r = await client.request(method, path, json={"by": "x"}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, (method, path)


async def test_propose_and_approve_over_http_and_the_page(
    client: httpx.AsyncClient, change_log: ChangeLog
) -> None:
    new = RULES.replace("limit: 5}", "limit: 8}")
    broken = {"by": "吴芳", "reason": "x", "files": {"rules/weld.yaml": "rules: [{id: 1}]"}}
    bad = await client.post("/api/changes", headers=AUTH, json=broken)
    assert bad.status_code == 400 and bad.json()["problems"][0].startswith("rules/weld.yaml:1:")
    proposal = {"by": "吴芳", "reason": "误报太多", "files": {"rules/weld.yaml": new}}
    r = await client.post("/api/changes", headers=AUTH, json=proposal)
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["id"], c["status"], c["waiting"], c["levels"]) == (
        2,
        "pending",
        0,
        ["quality_engineer", "team_lead", "workshop_director"],
    )
    assert c["diffs"][0]["items"][0]["changes"] == [["deviation.limit", 5, 8]]
    assert c["prediction"]["days"] == 2

    r = await client.post("/api/changes/2/approve", headers=AUTH, json={"by": "王强"})
    assert (r.status_code, r.json()) == (
        409,
        {"error": "王强 is not a quality_engineer: level 1 of 3 (quality_engineer) of change #2 needs one"},
    )
    assert (await client.post("/api/changes/7/approve", headers=AUTH, json={"by": "陈工"})).status_code == 404
    r = await client.post("/api/changes/2/approve", headers=AUTH, json={"by": "陈工", "comment": "ok"})
    assert r.status_code == 200 and r.json()["approvals"][0]["by"] == "陈工"

    page = await client.get("/approvals")
    assert page.status_code == 200 and "waits for level 2 of 3 (team_lead): 李娜" in page.text
    one = await client.get("/approvals/2")
    assert 'name="token" type="password"' in one.text and "deviation.limit 5 -&gt; 8" in one.text
    form = {"by": "李娜", "text": "同意", "action": "approve", "token": "wrong"}
    assert (await client.post("/approvals/2", data=form)).status_code == 403
    r = await client.post("/approvals/2", data={**form, "token": TOKEN})
    assert r.status_code == 200 and "Recorded." in r.text
    r = await client.post("/approvals/2", data={**form, "by": "王强", "token": TOKEN})
    assert r.status_code == 409 and "王强 is not a workshop_director" in r.text
    r = await client.post("/api/changes/2/approve", headers=AUTH, json={"by": "郑浩"})
    assert r.json()["status"] == "live"

    log = (await client.get("/api/changes/log?verify=1", headers=AUTH)).json()
    assert log["verified"] is True
    actions = [x["action"] for x in log["records"]]
    sources = [r.data.get("source") for r in await change_log.records() if r.action == "approved"]
    assert sources == ["api from 10.1.2.3", "page from 10.1.2.3", "api from 10.1.2.3"]
    assert actions == ["baseline", "proposed", "approved", "approved", "approved", "activated"]
    csv = await client.get("/api/changes/log?format=csv", headers=AUTH)
    assert csv.text.startswith("seq,at_utc,at_local,change,action,actor,summary,hash\n1,")
    printable = await client.get("/approvals/log")
    assert "The chain verifies: 6 records" in printable.text and "<script" not in printable.text
    listed = (await client.get("/api/changes", headers=AUTH)).json()["changes"]
    assert [(x["id"], x["status"]) for x in listed] == [
        (2, "live"),
        (1, "baseline"),
    ]  # its KPI file still runs
