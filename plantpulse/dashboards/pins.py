"""Board PINs: how a person on the shop floor says who they are before acknowledging.

Choices, and why:
- The people file keeps ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (``plantpulse board pin``
  prints one), never the PIN: a file that is read by many (or sits in git) does not give PINs
  away at a glance. A PIN is short, so the hash alone does not stop an offline search of a
  stolen file; the people file stays private, and the rate limit below is the defence.
- Verification derives the hash again (in a worker thread: it takes tens of milliseconds on
  purpose) and compares with ``hmac.compare_digest``; an unknown person is checked against a
  dummy hash, so the answer's timing does not tell who has a PIN.
- ``PinGuard`` rate-limits wrong PINs per person and per client address: after ``failures``
  misses within ``window`` the key is locked for ``lockout``, doubling with every further lock
  up to ``max_lockout``. Pure: time comes in as an argument. Its memory is bounded.
- Nothing here logs, formats or returns a PIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 120_000
MIN_PIN = 4
NS_PER_S = 10**9


def hash_pin(pin: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The stored form of ``pin`` (what ``board_pin:`` holds)."""
    if len(pin) < MIN_PIN:
        raise ValueError(f"a PIN has at least {MIN_PIN} characters")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def pin_hash_problem(stored: str) -> str | None:
    """Why ``stored`` is not a PIN hash ``hash_pin`` writes, or None."""
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        return f"board_pin is a hash like {ALGORITHM}$...: run `plantpulse board pin` and paste its output"
    if not parts[1].isdigit() or not 10_000 <= int(parts[1]) <= 10_000_000:
        return "board_pin: the iteration count must be between 10000 and 10000000"
    try:
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    except ValueError:
        return "board_pin: salt and hash must be base64"
    if len(salt) < 8 or len(digest) != 32:
        return "board_pin: the salt must have at least 8 bytes and the hash 32"
    return None


def verify_pin(stored: str | None, pin: str) -> bool:
    """True when ``pin`` derives ``stored``; ``stored`` None (no such person) burns the same time."""
    if stored is None or pin_hash_problem(stored) is not None:
        stored, known = _dummy(), False
    else:
        known = True
    _, iterations, salt, digest = stored.split("$")
    got = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), _unb64(salt), int(iterations))
    return hmac.compare_digest(got, _unb64(digest)) and known


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError(str(e)) from None


@cache
def _dummy() -> str:
    return hash_pin("never-a-pin", salt=b"plantpulse-dummy")


@dataclass
class _Key:
    failures: list[int] = field(default_factory=list)  # times of recent misses, at most `failures`
    locked_until: int = 0
    locks: int = 0


class PinGuard:
    """Counts wrong PINs per key (``person:NAME``, ``client:ADDRESS``) and locks keys that miss
    too often. ``wait(keys, now)`` says how long to refuse without checking; ``failed`` and
    ``succeeded`` record the outcome."""

    def __init__(
        self,
        failures: int = 5,
        window: int = 300 * NS_PER_S,
        lockout: int = 60 * NS_PER_S,
        max_lockout: int = 3600 * NS_PER_S,
        max_keys: int = 10_000,
    ) -> None:
        self.failures = failures
        self.window = window
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Key] = OrderedDict()

    def wait(self, keys: tuple[str, ...], now: int) -> int:
        """ns until every key may try again (0: go ahead)."""
        return max([0, *(k.locked_until - now for key in keys if (k := self._keys.get(key)) is not None)])

    def failed(self, keys: tuple[str, ...], now: int) -> None:
        for key in keys:
            k = self._keys.pop(key, None) or _Key()
            self._keys[key] = k  # most recently failed last: the oldest are evicted first
            recent = [t for t in k.failures if now - t < self.window]
            k.failures = [*recent[max(0, len(recent) - self.failures + 1) :], now]
            if len(k.failures) >= self.failures:
                k.locked_until = now + min(self.lockout << k.locks, self.max_lockout)
                k.locks += 1
                k.failures = []
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """A right PIN forgets that person's misses (a client's expire with the window)."""
        self._keys.pop(key, None)


__all__ = ["PinGuard", "hash_pin", "pin_hash_problem", "verify_pin"]
