"""Flood control: past N per window a recipient gets one digest instead."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantpulse.notifier.flood import Deliver, Digest, FloodControl, Held

S = 10**9
M = 60 * S


def test_eleventh_message_in_ten_minutes_is_held_and_digested() -> None:
    fc = FloodControl()
    out = [fc.offer("张伟", f"k{i}", i * 30 * S) for i in range(15)]
    assert all(isinstance(o, Deliver) for o in out[:10])
    assert all(isinstance(o, Held) for o in out[10:])
    assert fc.next_due() == 300 * S + M
    assert fc.flush(300 * S + M - 1) == []
    assert fc.flush(300 * S + M) == [Digest("张伟", ("k10", "k11", "k12", "k13", "k14"), 300 * S, 360 * S)]
    assert fc.next_due() is None


def test_recipients_are_independent_and_the_window_slides() -> None:
    fc = FloodControl(threshold=2, window=10 * M)
    assert isinstance(fc.offer("a", "1", 0), Deliver)
    assert isinstance(fc.offer("a", "2", M), Deliver)
    assert isinstance(fc.offer("b", "3", M), Deliver)
    assert isinstance(fc.offer("a", "4", 2 * M), Held)
    assert fc.flooded("a", 2 * M) and not fc.flooded("b", 2 * M)
    assert not fc.flooded("a", 12 * M + 1)  # the first ones slid out of the window
    assert [d.keys for d in fc.flush(3 * M)] == [("4",)]
    assert isinstance(fc.offer("a", "5", 13 * M), Deliver)


def test_state_survives_a_restart() -> None:
    fc = FloodControl(threshold=1)
    fc.offer("a", "1", 0)
    fc.offer("a", "2", S)
    again = FloodControl.load(json.loads(json.dumps(fc.dump())))
    assert again.next_due() == fc.next_due() == S + M
    assert [d.keys for d in again.flush(2 * M)] == [("2",)]


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        FloodControl(threshold=0)


@given(times=st.lists(st.integers(0, 3600), min_size=1, max_size=80).map(sorted), n=st.integers(1, 12))
@settings(max_examples=200, deadline=None)
def test_every_message_is_delivered_or_digested_exactly_once(times: list[int], n: int) -> None:
    fc = FloodControl(threshold=n)
    delivered: list[str] = []
    digested: list[str] = []
    for i, t in enumerate(times):
        for d in fc.flush(t * S):
            digested.extend(d.keys)
        o = fc.offer("p", str(i), t * S)
        if isinstance(o, Deliver):
            delivered.append(o.key)
            assert sum(1 for x in times[:i] if x * S > t * S - 600 * S) < n  # under the threshold
    for d in fc.flush(10**6 * S):
        digested.extend(d.keys)
    assert sorted(delivered + digested, key=int) == [str(i) for i in range(len(times))]
    # never more than n single pushes in any 10-minute window
    pushed = [times[int(k)] for k in delivered]
    assert all(sum(1 for y in pushed if x - 600 < y <= x) <= n for x in pushed)
