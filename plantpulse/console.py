"""What ``run`` and ``demo`` print on stdout for the people watching: each alert as it is raised
and cleared, each push as it arrives (with its acknowledge link), notes, and the summary.

One language per run (``zh`` or ``en``: labels, severities, summary; the alert texts are the
rules' own). Severities are coloured on a terminal, through rich, and the output is plain
text when stdout is not one (a pipe, a file, a test) or ``NO_COLOR`` is set. Logs go to stderr
and are not this module's business.

    console = Console("zh")
    console.alert(event)                 # 14:02:11 报警 高   weld-current-deviation line1/weld02/current: ...
    console.push("张伟", "wecom", title, link)
    console.summary(samples, raised, cleared, pushes)
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.cells import cell_len
from rich.console import Console as RichConsole
from rich.text import Text

from plantpulse.alerts import AlertEvent
from plantpulse.notifier.messages import SEVERITY_LABELS
from plantpulse.people.schema import Language
from plantpulse.timefmt import NS_PER_S, format_duration

__all__ = ["SEVERITY_STYLES", "Console"]

SEVERITY_STYLES = {"low": "cyan", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}

_TEXT: dict[Language, dict[str, str]] = {
    "en": {
        "raised": "RAISED",
        "cleared": "CLEARED",
        "after": " after {active}",
        "push": "push to {to}: {title}",
        "ack": "acknowledge: {link}",
        "summary": "summary: {samples} samples, {raised} alerts raised, {cleared} cleared; pushes: {pushes}",
        "none": "none",
    },
    "zh": {
        "raised": "报警",
        "cleared": "恢复",
        "after": ",持续 {active}",
        "push": "推送给 {to}:{title}",
        "ack": "确认链接:{link}",
        "summary": "汇总:样本 {samples} 个,报警 {raised} 条,恢复 {cleared} 条;推送:{pushes}",
        "none": "无",
    },
}
_COUNTERS: dict[Language, dict[str, str]] = {
    "en": {},
    "zh": {
        "sent": "已发送",
        "failed": "失败",
        "dropped": "丢弃",
        "deferred": "延后",
        "attempts_failed": "失败尝试",
        "team": "值班人员",
    },
}
_INDENT = " " * 9  # under the clock of an alert line


def _pad(text: str, cells: int) -> str:
    """``text`` padded to ``cells`` terminal columns (a Chinese character takes two)."""
    return text + " " * max(0, cells - cell_len(text))


class Console:
    """Prints for people; ``color`` None: colours exactly when stdout is a terminal."""

    def __init__(self, lang: Language = "en", *, color: bool | None = None) -> None:
        self.lang = lang
        self._t = _TEXT[lang]
        # file=None: rich writes to whatever sys.stdout is at each print (pytest swaps it);
        # soft_wrap: never break a long line (a URL, a token) at the terminal's width
        self._out = RichConsole(
            force_terminal=color, no_color=color is False, highlight=False, soft_wrap=True, emoji=False
        )
        self._labels = (
            max(cell_len(self._t["raised"]), cell_len(self._t["cleared"])),
            8 if lang == "en" else max(cell_len(s) for s in SEVERITY_LABELS[lang].values()),
        )

    def _severity(self, severity: str) -> str:
        if self.lang == "en":
            return severity
        return SEVERITY_LABELS["zh"].get(severity, severity)

    def alert(self, ev: AlertEvent) -> None:
        """``HH:MM:SS RAISED  high     RULE TAG: MESSAGE`` / ``... CLEARED high     RULE TAG after D``."""
        clock = time.strftime("%H:%M:%S", time.localtime(ev.at // NS_PER_S))
        style = SEVERITY_STYLES.get(ev.severity, "")
        label_w, sev_w = self._labels
        line = Text(f"{clock} ")
        if ev.kind == "raised":
            line.append(_pad(self._t["raised"], label_w) + " ", style=style)
            line.append(_pad(self._severity(ev.severity), sev_w) + " ", style=style)
            line.append(f"{ev.rule} {ev.tag}: ")
            line.append(ev.message, style="bold")
        else:
            line.append(_pad(self._t["cleared"], label_w) + " ", style="green")
            line.append(_pad(self._severity(ev.severity), sev_w) + " ", style=style)
            line.append(f"{ev.rule} {ev.tag}")
            line.append(self._t["after"].format(active=format_duration(ev.at - ev.raised_at)))
        self._print(line)

    def push(self, to: str, title: str, link: str | None = None) -> None:
        """A push as its receiver got it: who, the title, and on a second line its acknowledge link."""
        self._print(Text(_INDENT + self._t["push"].format(to=to, title=title), style="dim"))
        if link:
            line = Text(_INDENT + "  ")
            line.append(self._t["ack"].format(link=""), style="dim")
            line.append(link, style="cyan underline")
            self._print(line)

    def note(self, text: str, *, style: str = "") -> None:
        """A line of narration (a banner, a hint), as given."""
        self._print(Text(text, style=style))

    def summary(self, samples: int, raised: int, cleared: int, pushes: Mapping[str, int]) -> None:
        words = _COUNTERS[self.lang]

        def counter(name: str) -> str:
            team, _, rest = name.rpartition(" ")
            label = words.get(rest, rest)
            return f"{words.get(team, team)} {label}" if team else label

        text = ", ".join(f"{counter(k)} {v}" for k, v in sorted(pushes.items())) or self._t["none"]
        self._print(
            Text(self._t["summary"].format(samples=samples, raised=raised, cleared=cleared, pushes=text))
        )

    def _print(self, text: Text) -> None:
        self._out.print(text, crop=False, overflow="ignore", no_wrap=True)
        self._out.file.flush()
