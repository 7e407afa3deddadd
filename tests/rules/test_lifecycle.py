"""The spec state machine stepped by hand, and the engine's fast-path table checked against it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from plantpulse.rules import condition, lifecycle
from plantpulse.rules.lifecycle import (
    INACTIVE,
    Cleared,
    Clearing,
    Firing,
    Pending,
    Raised,
    State,
    Status,
    Transition,
)

F, C, N, U = Status.FIRE, Status.CLEAR, Status.BAND, Status.UNKNOWN


@dataclass(frozen=True)
class Hold:
    for_ns: int
    clear_for_ns: int


def walk(hold: Hold, points: list[tuple[int, Status] | int]) -> tuple[State, list[Transition]]:
    """Step through ``(ts, status)`` points (value = ts) and bare watermarks."""
    state: State = INACTIVE
    out: list[Transition] = []
    for p in points:
        state, got = (
            lifecycle.tick(state, p, hold) if isinstance(p, int) else lifecycle.step(state, *p, p[0], hold)
        )
        out += got
    return state, out


H2 = Hold(2, 0)
CASES = [
    pytest.param(
        H2, [(0, F), (1, F), (2, C)], [Raised(2, 1), Cleared(2, 2, 1)], id="false at t0+for still raises"
    ),
    pytest.param(H2, [(0, F), (1, C), (3, F)], [], id="false before t0+for resets"),
    pytest.param(Hold(3, 0), [(0, F), (1, F), (2, U), (3, F), (4, F)], [], id="bad data resets pending"),
    pytest.param(H2, [(0, F), (1, N), 5], [], id="band resets pending"),
    pytest.param(H2, [(0, F), 1, 2, 3], [Raised(2, 0)], id="watermark fires at t0+for, not before"),
    pytest.param(
        Hold(0, 2),
        [(0, F), (1, C), (2, N), (3, C), (4, U), (5, C), 6, 7],
        [Raised(0, 0), Cleared(7, 0, 0)],
        id="band and bad data reset a pending clear; clear.for",
    ),
    pytest.param(Hold(0, 1), [(0, F), (1, N), (2, N), (3, F), 9], [Raised(0, 0)], id="band keeps it firing"),
    pytest.param(
        Hold(1, 1),
        [(0, F), (2, C), (3, F), (5, F)],
        [Raised(1, 0), Cleared(3, 1, 0), Raised(4, 3)],
        id="a new alert only after the clear",
    ),
]


@pytest.mark.parametrize(("hold", "points", "expected"), CASES)
def test_lifecycle(hold: Hold, points: list[tuple[int, Status] | int], expected: list[Transition]) -> None:
    assert walk(hold, points)[1] == expected


def test_after_a_clear_the_same_point_can_start_the_next_alert() -> None:
    state, out = walk(Hold(0, 1), [(0, F), (1, C), (2, F)])
    assert out == [Raised(0, 0), Cleared(2, 0, 0), Raised(2, 2)]
    assert state == Firing(2, 2)


def test_value_is_the_last_fire_point_before_raised_at() -> None:
    assert walk(Hold(2, 0), [(0, F), (1, F), (2, F), (3, F)])[0] == Firing(2, 1)


def test_stale_silence_is_a_fire_point_at_last_plus_d() -> None:
    hold = Hold(2, 0)
    state, out = lifecycle.silence(INACTIVE, (10, 7.0), 12, 3, hold)
    assert (state, out) == (INACTIVE, [])  # not silent for 3 yet
    state, out = lifecycle.silence(state, (10, 7.0), 13, 3, hold)
    assert (state, out) == (Pending(13, 7.0), [])
    state, out = lifecycle.step(state, 15, C, 1.0, hold)  # the next sample, exactly at 13 + for
    assert out == [Raised(15, 7.0), Cleared(15, 15, 7.0)]


def test_fast_path_table_is_the_lifecycle_before_a_deadline() -> None:
    """condition._TABLE[4 * mode + code] from lifecycle.step at a point before the pending
    run's deadline: 0 nothing changes, 1 a run starts, 2 it goes on, 3 it ends."""
    hold = Hold(10, 10)
    by_mode: list[State] = [INACTIVE, Firing(0, 0.0), Pending(0, 0.0), Clearing(0, 0.0, 0)]
    for mode, state in enumerate(by_mode):
        for code in Status:
            after, out = lifecycle.step(state, 5, code, 0.0, hold)
            assert out == []
            was_pending = isinstance(state, Pending | Clearing)
            is_pending = isinstance(after, Pending | Clearing)
            if was_pending:
                want = 2 if is_pending and after.since == state.since else 3  # type: ignore[union-attr]
            else:
                want = 1 if is_pending else 0
            assert condition._TABLE[4 * mode + code] == want, (state, code)
            assert bool(condition._HOTMASK[mode] >> code & 1) == (want != 0)
    assert [int(s) for s in Status] == [condition.BAND, condition.FIRE, condition.CLEAR, condition.UNKNOWN]
    assert np.array_equal(condition._TABLE.reshape(4, 4)[0], [0, 1, 0, 0])
