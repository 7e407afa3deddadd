"""Signed acknowledge links: ok, forged, expired, reused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantpulse.notifier.links import Claims, link, secret_from, sign, verify

KEY = b"k" * 32
S = 10**9
EXP = 1_800_000_000 * S


def test_valid_token_round_trips_with_unicode_names() -> None:
    token = sign(KEY, "alert-1", "张伟", EXP, "n1")
    v = verify(KEY, token, EXP - S)
    assert v.ok and v.claims == Claims("alert-1", "张伟", EXP, "n1")
    assert link("https://pp.example/ack/", token) == f"https://pp.example/ack/{token}"


def test_expired_at_the_expiry_instant() -> None:
    token = sign(KEY, "a", "p", EXP, "n")
    assert verify(KEY, token, EXP).status == "expired"
    assert verify(KEY, token, EXP - 1).status == "ok"


def test_reused_nonce_is_refused() -> None:
    token = sign(KEY, "a", "p", EXP, "n")
    used = {"n"}
    assert verify(KEY, token, 0, used.__contains__).status == "used"
    assert verify(KEY, sign(KEY, "a", "p", EXP, "m"), 0, used.__contains__).ok


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "x",
        lambda t: "x" + t,
        lambda t: t.replace(".", ""),
        lambda t: t.split(".")[0] + ".",
        lambda t: "!!!." + t.split(".")[1],
        lambda t: sign(b"another-secret-key-32-bytes-long", "a", "p", EXP, "n"),
        lambda t: sign(KEY, "a", "q", EXP, "n").split(".")[0] + "." + t.split(".")[1],  # person swapped
        lambda t: sign(KEY, "a", "p", EXP + 3600 * S, "n").split(".")[0] + "." + t.split(".")[1],  # extended
    ],
)
def test_forged_tokens(mangle: object) -> None:
    token = sign(KEY, "a", "p", EXP, "n")
    assert callable(mangle)
    v = verify(KEY, mangle(token), 0)
    assert v.status == "forged" and v.claims is None


def test_forged_wins_over_expired_and_rotation_keeps_old_links() -> None:
    old = sign(KEY, "a", "p", EXP, "n")
    assert verify(b"x" * 32, old, EXP + S).status == "forged"
    assert verify([b"x" * 32, KEY], old, 0).ok


def test_secret_from_config_or_env() -> None:
    assert secret_from("s" * 16, {}) == b"s" * 16
    assert secret_from(None, {"PLANTPULSE_ACK_SECRET": "e" * 20}) == b"e" * 20
    with pytest.raises(ValueError, match="at least 16 bytes"):
        secret_from(None, {"PLANTPULSE_ACK_SECRET": "short"})
    with pytest.raises(ValueError, match="cannot contain"):
        sign(KEY, "a\x1fb", "p", EXP, "n")


@given(alert=st.text(min_size=1).filter(lambda s: "\x1f" not in s), person=st.text(min_size=1).filter(
    lambda s: "\x1f" not in s), flip=st.integers(0, 10**6))  # fmt: skip
def test_any_single_character_change_is_forged(alert: str, person: str, flip: int) -> None:
    token = sign(KEY, alert, person, EXP, "nonce")
    assert verify(KEY, token, 0).claims == Claims(alert, person, EXP, "nonce")
    i = flip % len(token)
    replacement = "A" if token[i] != "A" else "B"
    changed = token[:i] + replacement + token[i + 1 :]
    v = verify(KEY, changed, 0)
    # base64 padding bits can make a change decode to the same bytes; then it is the same token
    assert v.status == "forged" or v.claims == Claims(alert, person, EXP, "nonce")
