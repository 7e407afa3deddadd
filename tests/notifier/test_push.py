"""Pushes reach a real local HTTP receiver through apprise's json:// (no mocks)."""

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.notifier.push import PushNotifier, render
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.timefmt import NS_PER_S

T0 = 1767225600 * NS_PER_S


def event(kind: str = "raised", at: int = T0) -> AlertEvent:
    return AlertEvent(
        kind,
        "weld-current-deviation",
        "line1/weld01/current",
        "high",  # type: ignore[arg-type]
        T0,
        at,
        106.2,
        "焊接电流偏差 +6.2 A,已持续 3s",
    )


async def test_raise_and_clear_are_pushed_with_on_shift_people() -> None:
    async with PushReceiver() as rx:
        notifier = PushNotifier([rx.url])
        notifier.start()
        raised, cleared = event(), event("cleared", T0 + 7 * NS_PER_S)
        notifier.submit([raised, cleared], {raised.alert_id: {"operator": ["张伟"], "team_lead": ["李娜"]}})
        got = await rx.wait_for(2)
        await notifier.stop()
    assert got[0].body["title"] == "[HIGH] weld-current-deviation @ line1/weld01"
    assert "焊接电流偏差 +6.2 A" in got[0].body["message"]
    assert "operator: 张伟; team_lead: 李娜" in got[0].body["message"]
    assert got[1].body["title"].startswith("[CLEARED]")
    assert "active 7s" in got[1].body["message"]
    assert notifier.counts == {"sent": 2}


async def test_unreachable_destination_is_counted_failed_and_others_still_receive(port: int) -> None:
    async with PushReceiver() as rx:
        notifier = PushNotifier([f"json://127.0.0.1:{port}/dead", rx.url], retries=2, backoff=0.01)
        notifier.start()
        notifier.submit([event()], {})
        await rx.wait_for(1)
        await notifier.stop()
    assert notifier.counts["sent"] == 1
    assert notifier.counts["failed"] == 1


async def test_full_queue_drops_oldest_and_counts() -> None:
    notifier = PushNotifier(["json://127.0.0.1:9/x"], capacity=2)  # workers not started: nothing drains
    notifier.submit([event(at=T0 + i) for i in range(5)], {})
    assert notifier.counts["dropped"] == 3


def test_invalid_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a valid Apprise URL"):
        PushNotifier(["nosuchscheme://x"])


def test_render_mentions_value_and_time() -> None:
    push = render(event())
    assert "value: 106.2" in push.body
    assert "raised_at: 2026-01-01T00:00:00.000Z" in push.body
