"""A small team whose contacts point at a local PushReceiver, and a running notifier: its outbox in
the store's state directory (where ``plantpulse ack --store URL`` finds it), its journal written
straight to the SQLite store (production writes it through the spool: tests/notifier/test_runtime.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent
from plantpulse.config import PlantConfig, StoreConfig
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.outbox import Outbox
from plantpulse.notifier.receiver import Received
from plantpulse.people.roster import Roster
from plantpulse.store.sqlite import SQLiteStore
from plantpulse.store.sqlite_outbox import SQLiteOutbox

S = 10**9
M = 60 * S
T0 = 1_796_083_200 * S  # 2026-12-01 00:00 UTC (08:00 in Asia/Shanghai)
SECRET = b"0123456789abcdef0123456789abcdef"

TEAM = """\
site: {{name: 焊装车间, timezone: Asia/Shanghai}}
team:
  language: zh
  people:
    张伟: {{roles: [operator], contacts: {{wecom: "{push}/zhangwei"}}}}
    李娜: {{roles: [team_lead], contacts: {{wecom: "{push}/lina", sms: "{push}/lina-sms"}}}}
    吴芳: {{roles: [quality_engineer], contacts: {{email: "{qa}"}}}}
    郑浩: {{roles: [workshop_director], language: en, contacts: {{wecom: "{push}/zhenghao"}}}}
  assignments:
    - {{asset: "*", roles: [operator], people: [张伟]}}
    - {{asset: "*", roles: [team_lead], people: [李娜]}}
    - {{asset: "*", roles: [quality_engineer], people: [吴芳]}}
    - {{asset: "*", roles: [workshop_director], people: [郑浩]}}
  policies:
    default:
      {repeat}
      steps:
        - {{after: 0s, to: [operator, team_lead], channels: [wecom]}}
        - {{after: 15m, to: [quality_engineer]}}
        - {{after: 45m, to: [workshop_director]}}
  flood: {{threshold: {threshold}, window: 10m, digest_every: 1m}}
  links: {{ttl: 1h, base_url: "http://127.0.0.1:1/ack"}}
"""


def team_plant(
    push: str, qa: str | None = None, threshold: int = 10, repeat: str | None = None
) -> PlantConfig:
    """``push``: a receiver's json:// base URL; ``qa``: the quality engineer's contact."""
    base = push.rstrip("/")
    text = TEAM.format(
        push=base.rpartition("/")[0] if base.endswith("/push") else base,
        qa=qa or f"{base}/wufang",
        threshold=threshold,
        repeat=f"repeat: {repeat}" if repeat else "",
    )
    return yamlsrc.validate(PlantConfig, yamlsrc.load("plant.yaml", text=text))


def on_shift(plant: PlantConfig, ev: AlertEvent) -> dict[str, dict[str, list[str]]]:
    return {ev.alert_id: Roster(plant.team, plant.site.timezone).on_shift(ev.asset, ev.raised_at)}


def raised(i: int = 0, at: int = T0, kind: str = "raised", raised_at: int | None = None) -> AlertEvent:
    return AlertEvent(
        kind,  # type: ignore[arg-type]
        "weld-current-deviation", f"line1/weld0{i}/current", "high", at if raised_at is None else raised_at,
        at, 206.2, "焊接电流偏差 +6.2 A,已持续 3s",
    )  # fmt: skip


def who(items: list[Received]) -> list[str]:
    """The receiver path's last part names the person (and channel) a push was for."""
    return [r.path.rpartition("/")[2] for r in items]


@dataclass
class Running:
    store: SQLiteStore
    outbox: Outbox
    notifier: EscalationNotifier
    plant: PlantConfig

    async def raise_alert(self, ev: AlertEvent) -> None:
        shift = on_shift(self.plant, ev) if ev.kind == "raised" else {}
        await self.store.write_alert_events([ev], uuid.uuid4().hex, shift)
        self.notifier.submit([ev], shift)


@asynccontextmanager
async def running(
    db: Path,
    plant: PlantConfig,
    clock: ManualClock,
    *,
    abort: bool = False,
    outbox: Outbox | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    """A notifier with its store at ``db``; ``abort`` ends it like a crash (no draining)."""
    url = f"sqlite:///{db}"
    store = SQLiteStore(url)
    outbox = outbox or SQLiteOutbox.for_store(StoreConfig(url=url))
    await store.open()
    await outbox.open()
    options.setdefault("backoff", 0.001)
    options.setdefault("poll_interval", 5 * S)
    notifier = EscalationNotifier(
        Roster(plant.team, plant.site.timezone), outbox, store=store, journal=store, clock=clock,
        secret=SECRET, link_base="http://127.0.0.1:1/ack", **options,
    )  # fmt: skip
    await notifier.start()
    try:
        yield Running(store, outbox, notifier, plant)
    finally:
        if abort:
            await notifier.abort()
        else:
            await notifier.stop()
        await outbox.close()
        await store.close()
