"""Hostile request input to the acknowledge handlers: refused with 400 before anything is spent.

A comment or name with a NUL or another control character (tab and newline are text) must not
reach the store: it used to fail there with a 500 after the link's one-time nonce was spent,
leaving the alert unacknowledged and the link dead."""

from __future__ import annotations

import pytest
from test_api import AUTH, Env

from plantpulse.notifier.links import link

HOSTILE = ["stop\x00now", "bell\x07", "esc\x1b[2J", "del\x7f", "c1\x85x"]


@pytest.mark.parametrize("comment", HOSTILE)
async def test_a_control_character_in_a_link_comment_is_400_and_the_link_still_works(
    env: Env, comment: str
) -> None:
    path = link("/ack", env.token())
    r = await env.client.post(path, data={"comment": comment})
    assert r.status_code == 400
    assert "control character" in r.text
    assert (await env.store.alert(env.alert_id)).acked_at is None  # type: ignore[union-attr]
    ok = await env.client.post(path, data={"comment": "已处理\n\t第二行"})
    assert ok.status_code == 200
    alert = await env.store.alert(env.alert_id)
    assert alert is not None and (alert.acked_by, alert.ack_comment) == ("李娜", "已处理\n\t第二行")


async def test_json_and_undecodable_link_bodies_are_checked_too(env: Env) -> None:
    path = link("/ack", env.token())
    json_ = {"content-type": "application/json"}
    form = {"content-type": "application/x-www-form-urlencoded"}
    for body, headers in [
        (b'{"comment": "a\\u0000b"}', json_),
        (b'{"comment": "lone \\ud800 surrogate"}', json_),  # not encodable as UTF-8 by any store
        (b'{"comment": "\xff"}', json_),
        (b"comment=%ff%fe", form),
    ]:
        assert (await env.client.post(path, content=body, headers=headers)).status_code == 400, body
    assert (await env.client.post(path, json={"comment": "fine"})).status_code == 200


@pytest.mark.parametrize("field", ["by", "comment"])
async def test_a_control_character_in_an_api_ack_is_400(env: Env, field: str) -> None:
    body = {"by": "赵敏", "comment": "ok", field: "x\x00y"}
    r = await env.client.post(f"/api/alerts/{env.alert_id}/ack", headers=AUTH, json=body)
    assert r.status_code == 400
    assert field in r.json()["error"] and "control character" in r.json()["error"]
    assert (await env.store.alert(env.alert_id)).acked_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["by", "reason"])
async def test_a_control_character_in_a_shelve_is_400(env: Env, field: str) -> None:
    body = {"by": "李娜", "reason": "换焊枪", "duration": "1h", field: "x\x00y"}
    r = await env.client.post(f"/api/alerts/{env.alert_id}/shelve", headers=AUTH, json=body)
    assert r.status_code == 400
    assert (await env.store.alert(env.alert_id)).shelved_until is None  # type: ignore[union-attr]
