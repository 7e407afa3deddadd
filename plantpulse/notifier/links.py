"""Signed, expiring, single-use acknowledge links: one alert, one person.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload))`` where the
payload is ``alert_id \\x1f person \\x1f expires (unix s) \\x1f nonce`` in UTF-8. Anyone holding
the link can acknowledge as that person until it expires, which is the point of a link in a
push; the nonce makes each link usable once (the adapter remembers used nonces in the store and
hands ``verify`` a ``used`` predicate, keeping this module free of I/O and clocks).

Several secrets may be given to ``verify``: the first signs, all verify, so a secret can be
rotated without invalidating the links already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from plantpulse.timefmt import NS_PER_S

ENV_SECRET = "PLANTPULSE_ACK_SECRET"
MIN_SECRET_BYTES = 16
_SEP = "\x1f"

Status = Literal["ok", "forged", "expired", "used"]


@dataclass(frozen=True, slots=True)
class Claims:
    alert_id: str
    person: str
    expires: int  # UTC ns
    nonce: str


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    claims: Claims | None = None  # set unless forged

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_problem(value: str, where: str) -> str | None:
    """Why ``value`` cannot sign links (too short: a guessable key lets anyone acknowledge any
    alert), or None. ``where`` names it for the user: ``"the secret"``, ``"$PLANTPULSE_ACK_SECRET"``."""
    n = len(value.encode("utf-8"))
    if n >= MIN_SECRET_BYTES:
        return None
    return f"{where} is {n} bytes; acknowledge links need a secret of at least {MIN_SECRET_BYTES} bytes"


def env_secret_problem(configured: str | None, env: Mapping[str, str]) -> str | None:
    """The problem ``secret_from`` would raise for a ``$PLANTPULSE_ACK_SECRET`` that is set but
    too short while ``team.links.secret`` is not, so config checks refuse it before a start."""
    value = env.get(ENV_SECRET, "")
    return secret_problem(value, f"${ENV_SECRET}") if not configured and value else None


def secret_from(configured: str | None, env: Mapping[str, str]) -> bytes:
    """The HMAC key: ``team.links.secret`` or ``$PLANTPULSE_ACK_SECRET``; too short is an error."""
    value = configured if configured else env.get(ENV_SECRET, "")
    problem = secret_problem(value, "team.links.secret" if configured else f"${ENV_SECRET}")
    if problem is not None:
        raise ValueError(problem)
    return value.encode("utf-8")


def new_nonce() -> str:
    """A fresh random nonce (the one non-deterministic helper; pass your own in tests)."""
    return secrets.token_urlsafe(12)


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def sign(secret: bytes, alert_id: str, person: str, expires: int, nonce: str) -> str:
    """Token for ``person`` to acknowledge ``alert_id`` until ``expires`` (UTC ns, kept to the second)."""
    for part in (alert_id, person, nonce):
        if _SEP in part:
            raise ValueError("alert id, person and nonce cannot contain \\x1f")
    payload = _SEP.join((alert_id, person, str(expires // NS_PER_S), nonce)).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def link(base_url: str, token: str) -> str:
    """``https://pp.example/ack`` + token -> ``https://pp.example/ack/<token>``."""
    return f"{base_url.rstrip('/')}/{quote(token, safe='.-_')}"


def verify(
    secret: bytes | Sequence[bytes], token: str, now: int, used: Callable[[str], bool] = lambda nonce: False
) -> Verdict:
    """Check a token at ``now`` (UTC ns): forged beats expired beats used, so nothing about an
    invalid token is revealed. Consuming the nonce is the caller's job, in the same transaction
    as the acknowledgement."""
    keys = [secret] if isinstance(secret, bytes) else list(secret)
    head, dot, sig = token.strip().partition(".")
    if not dot:
        return Verdict("forged")
    try:
        payload, mac = _unb64(head), _unb64(sig)
    except (binascii.Error, ValueError):
        return Verdict("forged")
    if not any(hmac.compare_digest(_mac(k, payload), mac) for k in keys):
        return Verdict("forged")
    try:
        alert_id, person, expires_s, nonce = payload.decode("utf-8").split(_SEP)
        claims = Claims(alert_id, person, int(expires_s) * NS_PER_S, nonce)
    except ValueError:  # signed by us but malformed: only possible with a leaked key
        return Verdict("forged")
    if now >= claims.expires:
        return Verdict("expired", claims)
    if used(claims.nonce):
        return Verdict("used", claims)
    return Verdict("ok", claims)
