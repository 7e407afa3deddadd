"""Message templates in Chinese and English."""

from __future__ import annotations

import math

from plantpulse.notifier.messages import AlertMessage, render, render_digest, trend
from plantpulse.people.schema import Templates

S = 10**9
T0 = 1_764_547_200 * S  # 2025-12-01 00:00:00 UTC = 08:00 in Shanghai


def msg(**kw: object) -> AlertMessage:
    base: dict[str, object] = dict(
        alert_id="a1", rule="weld-current-deviation", tag="line1/weld01/current", asset="line1/weld01",
        severity="high", message="焊接电流偏差 +6.2 A,已持续 3s", value=206.2, raised_at=T0, now=T0 + 90 * S,
        on_shift={"operator": ["张伟"], "team_lead": ["李娜", "赵敏"], "quality_engineer": []},
        ack_link="https://pp.example/ack/TOKEN", trend=trend([200.0, 203.5, 206.2], 3 * S),
        timezone="Asia/Shanghai",
    )  # fmt: skip
    base.update(kw)
    return AlertMessage(**base)  # type: ignore[arg-type]


def test_chinese_default() -> None:
    m = render(msg(), "zh")
    assert m.title == "【高】报警:weld-current-deviation @ line1/weld01"
    assert "焊接电流偏差 +6.2 A" in m.body.splitlines()[0]
    assert "数值:206.2  已持续:1m30s" in m.body
    assert "报警时间:2025-12-01 08:00:00 CST" in m.body
    assert "当班:操作工:张伟;班组长:李娜、赵敏;质量工程师:无人" in m.body
    assert "趋势:近 3s 最小 200,最大 206.2,最新 206.2(上升 ↑)" in m.body
    assert "确认:https://pp.example/ack/TOKEN" in m.body
    assert "恢复时间" not in m.body  # empty lines are left out


def test_english_clear_without_link_or_trend() -> None:
    m = render(
        msg(kind="clear", cleared_at=T0 + 600 * S, ack_link=None, trend=None, severity="critical"), "en"
    )
    assert m.title == "[CRITICAL] CLEARED: weld-current-deviation @ line1/weld01"
    assert "Cleared: 2025-12-01 08:10:00 CST" in m.body
    assert "Active for: 10m" in m.body
    assert "On shift: operator: 张伟; team_lead: 李娜, 赵敏; quality_engineer: nobody" in m.body
    assert "Acknowledge" not in m.body and "Trend" not in m.body


def test_custom_templates_override_part_by_part() -> None:
    m = render(msg(kind="escalate", step=1), "en", {"en": Templates(title="{kind} step {step}: {asset}")})
    assert m.title == "ESCALATED step 2: line1/weld01"
    assert m.body.startswith("焊接电流偏差")  # default body


def test_trend_ignores_bad_values_and_reports_direction() -> None:
    assert trend([math.nan], S) is None
    t = trend([5.0, math.nan, 1.0, 4.9], S)
    assert t is not None and (t.min, t.max, t.last, t.n) == (1.0, 5.0, 4.9, 3)
    assert "steady" in render(msg(trend=t), "en").body
    assert "falling" in render(msg(trend=trend([9.0, 1.0], S)), "en").body


def test_digest_counts_and_lists_newest_first() -> None:
    items = [
        msg(alert_id=str(i), raised_at=T0 + i * S, severity="critical" if i == 3 else "low")
        for i in range(25)
    ]
    d = render_digest(items, "zh", T0, T0 + 600 * S)
    assert d.title == "【报警汇总】10m 内 25 条报警"
    lines = d.body.splitlines()
    assert "紧急 1, 低 24" in lines[0]
    assert lines[1].endswith("(2025-12-01 08:00:24 CST)")
    assert lines[-1] == "…… 另有 5 条"
    e = render_digest(items[:2], "en", T0, T0 + 60 * S)
    assert e.title == "[ALERT FLOOD] 2 alerts in 1m" and len(e.body.splitlines()) == 3
