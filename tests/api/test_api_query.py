"""``GET /api/alerts``: ISO-8601 times out, strict query parameters in (a 400 is one line for a
person, never a Python message), the same filters as ``plantpulse alerts``."""

from __future__ import annotations

import uuid

import pytest
from test_api import AUTH, T0, Env, S, event

from plantpulse.alertquery import GROUPS, STATES

KNOWN = "since, until, state, rule, asset, limit"
NOT_A_TIME = (
    "is not a time; write ISO-8601 (2026-12-01T08:00:00Z, 2026-12-01, 2026-12-01T16:00+08:00)"
    " or a duration before now (90m, 24h, 7d)"
)
BAD = [
    ({"limit": "-1"}, "limit: expected a whole number from 1 to 1000, got '-1'"),
    ({"limit": "0"}, "limit: expected a whole number from 1 to 1000, got '0'"),
    ({"limit": "1001"}, "limit: expected a whole number from 1 to 1000, got '1001'"),
    ({"limit": "ten"}, "limit: expected a whole number from 1 to 1000, got 'ten'"),
    ({"active": "maybe"}, "active: expected true or false, got 'maybe'"),
    ({"foo": "1"}, f"unknown query parameter 'foo' (known: {KNOWN})"),
    ({"since": "yesterday"}, f"since: 'yesterday' {NOT_A_TIME}"),
    ({"until": "2026-13-01"}, f"until: '2026-13-01' {NOT_A_TIME}"),
    ({"since": "1e400"}, f"since: '1e400' {NOT_A_TIME}"),
    ({"since": "nan"}, f"since: 'nan' {NOT_A_TIME}"),
    ({"since": "1796083200"}, f"since: '1796083200' {NOT_A_TIME}"),  # epoch seconds: not any more
    ({"since": ""}, "since: empty; write an ISO-8601 time (2026-12-01T08:00:00Z) or a duration (24h)"),
    ({"since": "3000-01-01"}, "since: '3000-01-01' is out of range (1970-01-01 to 2262-04-11)"),
    ({"since": "36500d"}, "since: '36500d' is out of range (1970-01-01 to 2262-04-11)"),
    ({"since": "99999d"}, "since: duration '99999d' is longer than 100 years (36500d)"),
    ({"since": "3x"}, "since: invalid duration '3x': write it like 500ms, 3s, 2m or 1h"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, "until must be later than since"),
    ({"state": "exploded"}, f"state: unknown state 'exploded' (one of: {', '.join((*GROUPS, *STATES))})"),
    ({"asset": "line1/[weld"}, "asset: invalid pattern 'line1/[weld': '[' at character 7 opens a "
                               "character class that is never closed (write [abc] or [!abc])"),
    ({"asset": "/"}, "asset: empty; write an asset such as line1/weld01, or a glob such as line1/weld0*"),
    ({"rule": " "}, "rule: empty; give a rule id"),
    ({"since": "1h", "start": "2h"}, "since and start: given twice; give it once"),
    ([("limit", "1"), ("limit", "2")], "limit: given twice; give it once"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "error"), BAD, ids=[str(p) for p, _ in BAD])
async def test_bad_parameters_are_400_with_one_clean_line(
    env: Env, params: dict[str, str] | list[tuple[str, str]], error: str
) -> None:
    r = await env.client.get("/api/alerts", params=params, headers=AUTH)
    assert (r.status_code, r.json()) == (400, {"error": error})


async def test_one_alert_and_its_journal_take_no_parameters(env: Env) -> None:
    for path in (f"/api/alerts/{env.alert_id}", f"/api/alerts/{env.alert_id}/journal"):
        r = await env.client.get(path, params={"format": "csv"}, headers=AUTH)
        assert (r.status_code, r.json()) == (
            400,
            {"error": "this endpoint takes no query parameters (got format)"},
        )


async def test_times_are_iso_8601_with_exact_ns_besides(env: Env) -> None:
    await env.client.post(f"/api/alerts/{env.alert_id}/ack", headers=AUTH, json={"by": "赵敏"})
    body = {"by": "李娜", "reason": "换焊枪", "duration": "30m"}
    await env.client.post(f"/api/alerts/{env.alert_id}/shelve", headers=AUTH, json=body)
    r = await env.client.get(f"/api/alerts/{env.alert_id}", headers=AUTH)
    a = r.json()
    now = T0 + 10 * S
    assert (a["raised_at"], a["raised_at_ns"]) == ("2026-12-01T00:00:00.000Z", T0)
    assert (a["acked_at"], a["acked_at_ns"]) == ("2026-12-01T00:00:10.000Z", now)
    assert (a["shelved_until"], a["shelved_until_ns"]) == ("2026-12-01T00:30:10.000Z", now + 1800 * S)
    assert (a["cleared_at"], a["cleared_at_ns"]) == (None, None)
    assert a["state"] == "shelved"
    listed = (
        await env.client.get("/api/alerts", params={"rule": "weld-current-deviation"}, headers=AUTH)
    ).json()
    assert [x for x in listed["alerts"] if x["id"] == env.alert_id] == [a]
    journal = (await env.client.get(f"/api/alerts/{env.alert_id}/journal", headers=AUTH)).json()["journal"]
    shelved = next(e for e in journal if e["action"] == "shelved")
    assert (shelved["at"], shelved["at_ns"]) == ("2026-12-01T00:00:10.000Z", now)
    assert shelved["detail"] == {
        "reason": "换焊枪",
        "until": "2026-12-01T00:30:10.000Z",
        "until_ns": now + 1800 * S,
    }


async def test_filters_by_state_asset_glob_and_relative_time(env: Env) -> None:
    more = [event("line1/weld02/current", T0 + 2 * S), event("line1/weld02/sub/x", T0 + 3 * S)]
    await env.store.write_alert_events(more, uuid.uuid4().hex)
    await env.client.post(f"/api/alerts/{env.alert_id}/ack", headers=AUTH, json={"by": "赵敏"})

    async def tags(params: dict[str, str] | list[tuple[str, str]]) -> list[str]:
        r = await env.client.get("/api/alerts", params=params, headers=AUTH)
        assert r.status_code == 200, r.json()
        return [a["tag"] for a in r.json()["alerts"]]

    everything = ["line1/weld02/sub/x", "line1/weld02/current", "line2/press01/force", "line1/weld01/current"]
    assert await tags({}) == everything
    assert await tags({"state": "acknowledged"}) == ["line1/weld01/current"]
    assert await tags({"state": "unacknowledged-active"}) == everything[:3]
    assert await tags([("state", "acknowledged-active"), ("state", "cleared")]) == ["line1/weld01/current"]
    assert await tags({"state": "unacknowledged,acknowledged"}) == everything
    assert await tags({"active": "false"}) == []
    assert await tags({"asset": "line1/weld0*"}) == ["line1/weld02/sub/x", "line1/weld02/current",
                                                    "line1/weld01/current"]  # fmt: skip
    assert await tags({"asset": "*/weld02"}) == everything[:2]
    assert await tags({"asset": "line1/weld02"}) == everything[:2]  # a name: the subtree
    assert await tags({"since": "8s"}) == everything[:2]  # now is T0 + 10 s
    assert (
        await tags({"since": "2026-12-01T08:00:01+08:00", "until": "2026-12-01T00:00:03Z"}) == everything[1:3]
    )
    assert await tags({"limit": "1", "state": "unacknowledged"}) == everything[:1]
    assert await tags({"start": "2026-12-01T00:00:01Z", "end": "2026-12-01T00:00:02Z"}) == everything[2:3]
