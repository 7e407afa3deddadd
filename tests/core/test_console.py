"""The console of ``run`` and ``demo``: one language per run, colour only on a terminal."""

from __future__ import annotations

import time

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.console import Console

S = 1_000_000_000


def _events() -> list[AlertEvent]:
    raised_at = time.time_ns() // S * S
    raised = AlertEvent(
        "raised", "w-dev", "line1/weld02/current", "high", raised_at, raised_at, 189.1, "偏差 [+9.1] A"
    )
    cleared = AlertEvent(
        "cleared", "w-dev", "line1/weld02/current", "high", raised_at, raised_at + 7_984_000_000, 189.1, ""
    )
    return [raised, cleared]


def _clock(ev: AlertEvent) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ev.at // S))


def test_plain_english_lines_as_the_docs_show_them(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console("en")
    raised, cleared = _events()
    console.alert(raised)
    console.alert(cleared)
    console.push(
        "张伟 (wecom)", "[HIGH] ALERT: w-dev @ line1/weld02", "http://127.0.0.1:8080/ack/" + "x" * 200
    )
    console.summary(10, 1, 1, {"team sent": 2, "sent": 1})
    assert capsys.readouterr().out.splitlines() == [
        f"{_clock(raised)} RAISED  high     w-dev line1/weld02/current: 偏差 [+9.1] A",
        f"{_clock(cleared)} CLEARED high     w-dev line1/weld02/current after 7.984s",
        "         push to 张伟 (wecom): [HIGH] ALERT: w-dev @ line1/weld02",
        "           acknowledge: http://127.0.0.1:8080/ack/" + "x" * 200,  # never wrapped
        "summary: 10 samples, 1 alerts raised, 1 cleared; pushes: sent 1, team sent 2",
    ]


def test_chinese_labels_aligned_by_terminal_columns(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console("zh")
    raised, cleared = _events()
    console.alert(raised)
    console.alert(cleared)
    console.summary(10, 1, 1, {"team sent": 2})
    assert capsys.readouterr().out.splitlines() == [
        f"{_clock(raised)} 报警 高   w-dev line1/weld02/current: 偏差 [+9.1] A",
        f"{_clock(cleared)} 恢复 高   w-dev line1/weld02/current,持续 7.984s",
        "汇总:样本 10 个,报警 1 条,恢复 1 条;推送:值班人员 已发送 2",
    ]


def test_severities_are_coloured_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    Console("en", color=True).alert(_events()[0])
    out = capsys.readouterr().out
    assert "\x1b[1;31mRAISED  \x1b[0m" in out  # high: bold red
    assert "偏差 [+9.1] A" in out  # the rule's text is never read as markup


def test_no_colour_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    Console("en").alert(_events()[0])  # pytest's capture is not a terminal
    assert "\x1b[" not in capsys.readouterr().out
