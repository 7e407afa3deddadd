"""Flood control per recipient: past N messages in a sliding window, one digest instead (EEMUA 191).

A person who gets more than ``threshold`` messages in ``window`` (default 10 in 10 minutes,
the EEMUA 191 flood rate) no longer gets one push per alert: further messages are held and
summarised in one digest, due ``digest_every`` after the first held message. Held messages
keep counting, so the recipient stays in flood mode while the storm lasts and leaves it once
the window has fewer than ``threshold`` messages again.

Pure and deterministic: times come in as arguments; ``dump``/``load`` give plain data. Keys are
opaque to this module (the adapter uses e.g. its outbox row id) and come back in the digest.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Deliver:
    recipient: str
    key: str
    at: int


@dataclass(frozen=True, slots=True)
class Held:
    recipient: str
    key: str
    at: int
    digest_at: int  # when the digest carrying it is due


@dataclass(frozen=True, slots=True)
class Digest:
    """Send one summary of ``keys`` (held since ``since``) to ``recipient`` instead of each."""

    recipient: str
    keys: tuple[str, ...]
    since: int
    at: int


class FloodControl:
    """Per-recipient sliding windows; ``offer`` each message, ``flush`` at ``next_due``."""

    def __init__(
        self, threshold: int = 10, window: int = 600 * 10**9, digest_every: int = 60 * 10**9
    ) -> None:
        if threshold < 1 or window <= 0 or digest_every <= 0:
            raise ValueError("threshold, window and digest_every must be positive")
        self.threshold = threshold
        self.window = window
        self.digest_every = digest_every
        self._recent: dict[str, deque[int]] = {}
        self._held: dict[str, list[tuple[str, int]]] = {}
        self._digest_at: dict[str, int] = {}

    def _count(self, recipient: str, at: int) -> deque[int]:
        times = self._recent.setdefault(recipient, deque())
        while times and times[0] <= at - self.window:
            times.popleft()
        return times

    def offer(self, recipient: str, key: str, at: int) -> Deliver | Held:
        """Decide for one message to one recipient at ``at`` (times must not go backwards)."""
        times = self._count(recipient, at)
        flooding = len(times) >= self.threshold
        times.append(at)
        if not flooding:
            return Deliver(recipient, key, at)
        self._held.setdefault(recipient, []).append((key, at))
        due = self._digest_at.setdefault(recipient, at + self.digest_every)
        return Held(recipient, key, at, due)

    def flush(self, now: int) -> list[Digest]:
        """Digests due at ``now``; each held key appears in exactly one digest."""
        out = []
        for recipient, due in sorted(self._digest_at.items()):
            if due > now:
                continue
            held = self._held.pop(recipient, [])
            del self._digest_at[recipient]
            if held:
                out.append(Digest(recipient, tuple(k for k, _ in held), held[0][1], now))
            self._count(recipient, now)
            if not self._recent.get(recipient):
                self._recent.pop(recipient, None)
        return out

    def next_due(self) -> int | None:
        return min(self._digest_at.values(), default=None)

    def flooded(self, recipient: str, at: int) -> bool:
        """Whether the next message to ``recipient`` at ``at`` would be held."""
        return len(self._count(recipient, at)) >= self.threshold

    def dump(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "window": self.window,
            "digest_every": self.digest_every,
            "recent": {r: list(t) for r, t in self._recent.items() if t},
            "held": {r: [list(x) for x in h] for r, h in self._held.items()},
            "digest_at": dict(self._digest_at),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> FloodControl:
        fc = cls(int(data["threshold"]), int(data["window"]), int(data["digest_every"]))
        fc._recent = {r: deque(int(x) for x in t) for r, t in data["recent"].items()}
        fc._held = {r: [(str(k), int(a)) for k, a in h] for r, h in data["held"].items()}
        fc._digest_at = {r: int(v) for r, v in data["digest_at"].items()}
        return fc
