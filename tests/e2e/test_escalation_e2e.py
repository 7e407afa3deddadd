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
import contextlib
import json
import re
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent, alert_id
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.notifier.runtime import start_notifying
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
        notifying = await start_notifying(
            plant, store, journal=store, api=api, env=ENV, clock=clock, backoff=0.001
        )
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


# -- the real `plantpulse run`: store outages, SIGKILL, `plantpulse ack` -----------------------------

RULES = """\
rules:
  - {id: high-current, tag: line1/weld01/current, above: 100, severity: high}
"""


def run_config(
    tmp_path: Path,
    push: str,
    broker: tuple[str, int],
    topic: str,
    *,
    store: str,
    steps: list[str],
    api_port: int | None = None,
    repeat: str | None = None,
) -> Path:
    """A plant.yaml on disk: one MQTT tag, one rule, a team whose contacts are ``push``."""
    people = {
        "张伟": {"roles": ["operator"], "contacts": {"wecom": f"{push}/zhangwei"}},
        "李娜": {"roles": ["team_lead"], "contacts": {"wecom": f"{push}/lina"}},
        "郑浩": {"roles": ["workshop_director"], "contacts": {"wecom": f"{push}/zhenghao"}},
    }
    roles = ["operator", "team_lead", "workshop_director"]
    plant: dict[str, Any] = {
        "site": {"name": "焊装车间", "timezone": "Asia/Shanghai"},
        "sources": [
            {
                "kind": "mqtt",
                "name": "weld",
                "host": broker[0],
                "port": broker[1],
                "persistent": False,
                "client_id": f"pp-{uuid.uuid4().hex[:8]}",
                "subscriptions": [
                    {
                        "topic": topic,
                        "tag": "line1/weld01/current",
                        "value": "$.v",
                        "timestamp": "$.ts",
                        "timestamp_format": "ms",
                    }
                ],
            }
        ],
        "rules": ["rules.yaml"],
        "store": {"url": store, "connect_timeout": "1s", "spool": {"dir": str(tmp_path / "state")}},
        "team": {
            "language": "zh",
            "people": people,
            "assignments": [
                {"asset": "*", "roles": [r], "people": [p]} for r, p in zip(roles, people, strict=True)
            ],
            "policies": {
                "default": {"steps": [{"after": a, "to": [r]} for a, r in zip(steps, roles, strict=False)]}
            },
        },
    }
    if api_port is not None:
        plant["api"] = {"listen": f"127.0.0.1:{api_port}", "token": TOKEN}
    if repeat is not None:
        plant["team"]["policies"]["default"]["repeat"] = repeat
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, allow_unicode=True), encoding="utf-8")
    return path


class Run:
    """``plantpulse run -c plant.yaml`` as a subprocess, output to files (a pipe could fill up)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        with (self.config.parent / f"run{self.starts}.log").open("wb") as log:  # the child keeps its copy
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "plantpulse", "run", "-c", str(self.config),
                stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=self.config.parent,
            )  # fmt: skip

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> str:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                await self.kill()
        return (self.config.parent / f"run{self.starts}.log").read_text("utf-8", "replace")


async def raise_by_mqtt(broker: tuple[str, int], topic: str, rx: PushReceiver) -> tuple[str, int]:
    """Publish a reading over the limit every 200 ms (the collector may still be connecting)
    until the first push arrives; returns that alert's id and raise time (the reading's ts)."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pp-pub-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(pub.connect, *broker)
    pub.loop_start()
    sent: dict[str, int] = {}
    try:
        async with asyncio.timeout(20):
            while not rx.received:
                ms = time.time_ns() // 10**6
                sent[alert_id("high-current", "line1/weld01/current", ms * 10**6)] = ms * 10**6
                pub.publish(topic, json.dumps({"v": 150.0, "ts": ms}).encode(), qos=1)
                with contextlib.suppress(TimeoutError):
                    await rx.wait_for(1, within=0.2)
    finally:
        pub.loop_stop()
        pub.disconnect()
    m = re.search(r"报警编号 (\S+)", rx.received[0].body["message"])
    assert m is not None and m.group(1) in sent
    return m.group(1), sent[m.group(1)]


@pytest.mark.mqtt
async def test_run_with_the_store_down_pushes_at_once_and_resumes_after_sigkill(
    tmp_path: Path, mqtt_broker: tuple[str, int], port: int
) -> None:
    """PostgreSQL on a closed port the whole time. The raise is pushed within 1 s; killed with
    SIGKILL while step 2 is pending and restarted at once (the outbox lock is waited for), the
    later steps go out exactly once, each at its time."""
    arrived: list[tuple[int, str]] = []
    topic = f"pptest/{uuid.uuid4().hex[:8]}/current"
    async with PushReceiver(
        on_push=lambda r: arrived.append((time.time_ns(), r.path.rpartition("/")[2]))
    ) as rx:
        store = f"postgresql://pp@127.0.0.1:{port}/plant"
        push = rx.url.rpartition("/")[0]
        config = run_config(tmp_path, push, mqtt_broker, topic, store=store, steps=["0s", "4s", "8s"])
        run = Run(config)
        await run.start()
        try:
            aid, raised_at = await raise_by_mqtt(mqtt_broker, topic, rx)
            await run.kill()  # step 2 pending
            await run.start()
            await rx.wait_for(3, within=20)
            await asyncio.sleep(
                1.0
            )  # a duplicate would arrive now, not be waited for: observe a quiet second
        finally:
            log = await run.stop()
    who = [p for _, p in arrived]
    assert who == ["zhangwei", "lina", "zhenghao"], log
    (t1, _), (t2, _), (t3, _) = arrived
    assert t1 - raised_at < 1 * S
    assert 4 * S <= t2 - raised_at < 5 * S
    assert 8 * S <= t3 - raised_at < 9 * S
    assert "database is locked" not in log and aid in rx.received[1].body["message"]


@pytest.mark.mqtt
@pytest.mark.parametrize("via", ["api", "outbox"])
async def test_after_plantpulse_ack_returns_no_further_step_is_sent(
    tmp_path: Path, mqtt_broker: tuple[str, int], free_api_port: int, via: str
) -> None:
    """With ``api:`` the command goes through the running process, which stops the escalation
    before answering: no reminder (``repeat: 500ms``) is sent once the acknowledgement is stored.
    Without, it goes through the plant's outbox, noticed within 250 ms: step 2 (due 6 s after the
    raise, after the command returns) is never sent."""
    topic = f"pptest/{uuid.uuid4().hex[:8]}/current"
    arrived: list[int] = []
    async with PushReceiver(on_push=lambda r: arrived.append(time.time_ns())) as rx:
        store = f"sqlite:///{tmp_path / 'plant.db'}"
        push = rx.url.rpartition("/")[0]
        if via == "api":
            config = run_config(
                tmp_path, push, mqtt_broker, topic, store=store, steps=["0s"], api_port=free_api_port,
                repeat="500ms",
            )  # fmt: skip
        else:
            config = run_config(tmp_path, push, mqtt_broker, topic, store=store, steps=["0s", "6s"])
        run = Run(config)
        await run.start()
        try:
            aid, raised_at = await raise_by_mqtt(mqtt_broker, topic, rx)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "plantpulse", "ack", aid, "--by", "张伟", "--comment", "已处理",
                "-c", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            returned = time.time_ns()
            assert proc.returncode == 0, err.decode()
            assert f"{aid}: acknowledged by 张伟" in out.decode()
            if via == "api":
                async with httpx.AsyncClient() as http:
                    health = await http.get(f"http://127.0.0.1:{free_api_port}/api/health",
                                            headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                assert health.json()["notifier"]["pending"] == 0  # stopped before the command returned
                await asyncio.sleep(2.0)  # four reminder intervals: observe that none comes
            else:
                assert returned - raised_at < 6 * S, "the command must return before step 2 is due"
                await asyncio.sleep(max(0.0, (raised_at + 7 * S - time.time_ns()) / S))  # past step 2
        finally:
            log = await run.stop()
    with sqlite3.connect(tmp_path / "plant.db") as conn:
        row = conn.execute(
            "SELECT acked_by, ack_comment, acked_at FROM alerts WHERE id = ?", (aid,)
        ).fetchone()
    assert row[:2] == ("张伟", "已处理")
    acked_at = row[2]
    assert acked_at < returned
    assert [t for t in arrived if t > acked_at + S // 5] == [], log  # one in flight at the ack may land
    assert {r.path for r in rx.received} == {"/zhangwei"}, log
