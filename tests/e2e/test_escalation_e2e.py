"""Escalation end to end with real delivery: apprise -> a local HTTP receiver (json://) and a
local SMTP server (aiosmtpd, mailto://); the acknowledge link in the push is followed over real
HTTP (uvicorn) and stops the escalation; forged, expired and reused links are refused.

WeCom, DingTalk and Feishu: apprise 2.2's wecombot://, dingtalk:// and feishu:// plugins post to
fixed https hosts (qyapi.weixin.qq.com, oapi.dingtalk.com, open.feishu.cn) and take no host or
port in their URLs, so they cannot be pointed at a local receiver without intercepting TLS. The
WeCom/DingTalk/Feishu contacts here are therefore json:// URLs to the receiver: the notifier
treats every channel alike (one apprise URL per contact), so this exercises the same path;
the plugin-specific payload formats are apprise's own and are covered by its test suite.

Time comes from a ManualClock shared by the notifier and the API: steps and link expiry are
stepped, never slept for.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.notifier.runtime import start_notifying
from plantpulse.notifier.service import ManualClock
from plantpulse.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

S = 10**9
M = 60 * S
T0 = 1_796_083_200 * S
TOKEN = "e2e-token-0123456789"
ENV = {"PLANTPULSE_ACK_SECRET": "e2e-secret-0123456789abcdef"}

PLANT = """\
site: {{name: 焊装车间, timezone: Asia/Shanghai}}
store: {{url: "sqlite:///{db}"}}
team:
  language: zh
  people:
    张伟: {{roles: [operator], contacts: {{wecom: "{push}/wecom/zhangwei"}}}}
    李娜: {{roles: [team_lead], contacts: {{dingtalk: "{push}/dingtalk/lina"}}}}
    吴芳: {{roles: [quality_engineer], contacts: {{email: "{smtp}"}}}}
    郑浩: {{roles: [workshop_director], language: en, contacts: {{feishu: "{push}/feishu/zhenghao"}}}}
  assignments:
    - {{asset: line1, roles: [operator], people: [张伟]}}
    - {{asset: line1, roles: [team_lead], people: [李娜]}}
    - {{asset: "*", roles: [quality_engineer], people: [吴芳]}}
    - {{asset: "*", roles: [workshop_director], people: [郑浩]}}
  policies:
    default:
      steps:
        - {{after: 0s, to: [operator, team_lead]}}
        - {{after: 15m, to: [quality_engineer]}}
        - {{after: 45m, to: [workshop_director]}}
  links: {{ttl: 2h}}
"""


class Mailbox:
    """aiosmtpd handler: keeps every message; ``wait_for`` blocks a worker thread, not the loop."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._cond = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._cond:
            self.messages.append(message_from_bytes(envelope.content))
            self._cond.notify_all()
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10.0) -> list[Any]:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: len(self.messages) >= count, within)

        assert await asyncio.to_thread(wait), f"{len(self.messages)} mails, expected {count}"
        return self.messages


@pytest.fixture
def mailbox(port: int) -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def ack_link(push: Received) -> str:
    m = re.search(r"确认:(http://\S+)", push.body["message"])
    assert m is not None, push.body["message"]
    return m.group(1)


def raised(tag: str, at: int) -> AlertEvent:
    return AlertEvent("raised", "weld-current-deviation", tag, "high", at, at, 206.2, "焊接电流偏差 +6.2 A")


async def test_pushes_mail_and_the_signed_link_stop_the_escalation(
    tmp_path: Path, mailbox: tuple[Mailbox, int], free_api_port: int
) -> None:
    box, smtp_port = mailbox
    async with PushReceiver() as rx:
        push = rx.url.rpartition("/")[0]
        smtp = (
            f"mailto://127.0.0.1:{smtp_port}?from=plantpulse@example.com&to=wufang@example.com&mode=insecure"
        )
        text = PLANT.format(db=tmp_path / "pp.db", push=push, smtp=smtp)
        plant = yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=text))
        api = ApiConfig.model_validate({"listen": f"127.0.0.1:{free_api_port}", "token": TOKEN})
        store = SQLiteStore(plant.store.url)
        await store.open()
        clock = ManualClock(T0)
        notifying = await start_notifying(plant, store, api=api, env=ENV, clock=clock, backoff=0.001)
        assert notifying.escalation is not None and notifying.on_shift is not None
        notifier = notifying.escalation
        try:

            async def alert(tag: str, at: int) -> AlertEvent:
                ev = raised(tag, at)
                shift = {ev.alert_id: notifying.on_shift(ev.asset, ev.raised_at)}  # type: ignore[misc]
                await store.write_alert_events([ev], uuid.uuid4().hex, shift)
                assert notifying.notifier is not None
                notifying.notifier.submit([ev], shift)
                return ev

            # 1. left alone: operator and team lead at once, the quality engineer by mail at 15 min
            first = await alert("line1/weld01/current", T0)
            await rx.wait_for(2)
            await notifier.idle()
            assert sorted(r.path for r in rx.received) == ["/dingtalk/lina", "/wecom/zhangwei"]
            assert "当班:操作工:张伟;班组长:李娜" in rx.received[0].body["message"]
            clock.set(T0 + 15 * M)
            mails = await box.wait_for(1)
            subject = str(make_header(decode_header(mails[0]["Subject"])))
            assert subject == "【高】升级:weld-current-deviation @ line1/weld01"
            assert mails[0]["To"] == "wufang@example.com"

            # 2. the team lead follows her link: acknowledged, journaled, escalation stopped
            lina = next(r for r in rx.received if r.path == "/dingtalk/lina")
            url = ack_link(lina)
            assert url.startswith(f"http://127.0.0.1:{free_api_port}/ack/")
            async with httpx.AsyncClient() as http:
                page = await http.get(url)
                assert page.status_code == 200 and "以 李娜 的身份确认此报警?" in page.text
                done = await http.post(url, data={"comment": "已换焊丝"})
                assert done.status_code == 200 and "已由 李娜 确认" in done.text
                await notifier.idle()
                assert first.alert_id not in notifier.pending
                clock.set(T0 + 2 * 3600 * S - 1)  # past step 2 (45 min), the links still valid
                await notifier.idle()
                assert not any(r.path.startswith("/feishu") for r in rx.received)
                assert len(box.messages) == 1
                journal = await store.journal(first.alert_id)
                ack = [e for e in journal if e.action == "acknowledged"]
                assert [(e.actor, e.detail) for e in ack] == [
                    ("李娜", {"comment": "已换焊丝", "source": "link from 127.0.0.1"})
                ]
                assert [e.action for e in journal] == ["raised", "notified", "escalated", "acknowledged"]

                # 3. refused: the same link again, a forged one, an expired one
                assert (await http.post(url)).status_code == 409
                head, _, sig = url.rpartition("/")[2].partition(".")
                forged = f"{url.rpartition('/')[0]}/{head}.{'A' * len(sig)}"
                assert (await http.post(forged)).status_code == 403
                zhang = next(r for r in rx.received if r.path == "/wecom/zhangwei")
                clock.set(T0 + 2 * 3600 * S)  # the 2 h ttl is over
                expired = await http.post(ack_link(zhang))
                assert expired.status_code == 410
                # the bearer API sees the acknowledged alert; without the token it sees nothing
                got = await http.get(f"http://127.0.0.1:{free_api_port}/api/alerts/{first.alert_id}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                assert got.json()["acked_by"] == "李娜"
                assert (await http.get(f"http://127.0.0.1:{free_api_port}/api/alerts")).status_code == 401

            # 4. a second alert left alone reaches the workshop director (English) at 45 min
            second = await alert("line1/weld02/current", T0 + 3 * 3600 * S)
            clock.set(T0 + 3 * 3600 * S)
            await rx.wait_for(4)
            clock.set(T0 + 3 * 3600 * S + 45 * M)
            await rx.wait_for(5)
            await notifier.idle()
            director = [r for r in rx.received if r.path == "/feishu/zhenghao"]
            assert [d.body["title"] for d in director] == [
                "[HIGH] ESCALATED: weld-current-deviation @ line1/weld02"
            ]
            assert len(box.messages) == 2
            assert second.alert_id in notifier.pending
        finally:
            await notifying.stop()
            await store.close()


@pytest.fixture
def free_api_port() -> int:
    from plantpulse.httpserve import free_port

    return free_port()
