"""Escalation timelines stepped with a fake clock; restart from serialized state; invariants."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plantpulse.notifier import escalation as esc
from plantpulse.notifier.escalation import (
    Acked,
    Cleared,
    DeliveryFailed,
    EscalationState,
    Send,
    Shelved,
    Stop,
    Tick,
    Unshelved,
    advance,
    next_due,
    plan,
)
from plantpulse.people.schema import EscalationPolicy

S = 10**9
M = 60 * S
T0 = 1_800_000_000 * S  # raised_at
ON_SHIFT = {
    "operator": ["张伟"],
    "team_lead": ["李娜"],
    "quality_engineer": ["吴芳"],
    "workshop_director": ["郑浩"],
}


def policy(**kw: Any) -> EscalationPolicy:
    data: dict[str, Any] = {
        "steps": [
            {"after": "0s", "to": ["operator", "team_lead"], "channels": ["wecom"]},
            {"after": "15m", "to": ["quality_engineer"]},
            {"after": "45m", "to": ["workshop_director"]},
        ]
    }
    data.update(kw)
    return EscalationPolicy.model_validate(data)


def start(maintenance: tuple[tuple[int, int], ...] = (), **kw: Any) -> EscalationState:
    return plan("a1", T0, ON_SHIFT, policy(**kw), maintenance=maintenance)


class Clock:
    """Drives one state like the adapter would: tick at every due time up to ``until``."""

    def __init__(self, state: EscalationState) -> None:
        self.state = state
        self.log: list[esc.Action] = []

    def event(self, ev: esc.Event) -> list[esc.Action]:
        self.state, actions = advance(self.state, ev)
        self.log.extend(actions)
        return actions

    def run(self, until: int) -> list[esc.Action]:
        out = []
        while (due := next_due(self.state)) is not None and due <= until:
            out += self.event(Tick(due))
        return out


def sends(actions: list[esc.Action]) -> list[tuple[int, str, int, tuple[str, ...]]]:
    return [(a.step, a.kind, (a.at - T0) // M, a.recipients) for a in actions if isinstance(a, Send)]


def test_plan_resolves_roles_through_the_snapshot() -> None:
    s = plan("a1", T0, ON_SHIFT, policy(steps=[{"to": ["operator", "郑浩", "team_lead", "operator"]}]))
    assert s.steps[0].recipients == ("张伟", "郑浩", "李娜")
    s = plan("a1", T0, {}, policy(steps=[{"to": ["quality_engineer"]}]), roles={"quality_engineer"})
    assert s.steps[0].recipients == ()


def test_unacknowledged_alert_escalates_step_by_step() -> None:
    c = Clock(start())
    assert next_due(c.state) == T0
    c.run(T0 + 2 * 3600 * S)
    assert sends(c.log) == [
        (0, "raise", 0, ("张伟", "李娜")),
        (1, "escalate", 15, ("吴芳",)),
        (2, "escalate", 45, ("郑浩",)),
    ]
    assert next_due(c.state) is None  # no repeat configured


def test_ack_between_steps_stops_everything_at_once() -> None:
    c = Clock(start(repeat="10m"))
    c.run(T0 + 14 * M)
    assert sends(c.log) == [(0, "raise", 0, ("张伟", "李娜")), (0, "repeat", 10, ("张伟", "李娜"))]
    assert c.event(Acked(T0 + 14 * M, "张伟")) == [Stop("a1", "acked", T0 + 14 * M)]
    assert next_due(c.state) is None
    assert c.run(T0 + 10 * 3600 * S) == []
    assert c.event(Cleared(T0 + 20 * M)) == [] and c.state.cleared_at == T0 + 20 * M
    assert c.event(Acked(T0 + 21 * M, "李娜")) == [] and c.state.acked_by == "张伟"


def test_repeat_restarts_after_each_step() -> None:
    c = Clock(start(repeat="10m"))
    c.run(T0 + 60 * M)
    assert [(k, m) for _, k, m, _ in sends(c.log)] == [
        ("raise", 0), ("repeat", 10), ("escalate", 15), ("repeat", 25), ("repeat", 35), ("escalate", 45),
        ("repeat", 55),
    ]  # fmt: skip


def test_clear_before_ack_notifies_then_stops_but_still_awaits_ack() -> None:
    c = Clock(start())
    c.run(T0 + 20 * M)
    actions = c.event(Cleared(T0 + 20 * M))
    assert sends(actions) == [(0, "clear", 20, ("张伟", "李娜")), (1, "clear", 20, ("吴芳",))]
    assert actions[-1] == Stop("a1", "cleared", T0 + 20 * M)
    assert next_due(c.state) is None and c.run(T0 + 5 * 3600 * S) == []
    assert c.state.acked_at is None  # unacknowledged-cleared
    assert c.event(Acked(T0 + 90 * M, "吴芳")) == [] and c.state.acked_by == "吴芳"


def test_continue_after_clear_keeps_escalating_until_ack() -> None:
    c = Clock(start(continue_after_clear=True))
    c.run(T0 + 5 * M)
    assert [a.kind for a in c.event(Cleared(T0 + 5 * M)) if isinstance(a, Send)] == ["clear"]
    c.run(T0 + 50 * M)
    assert [s[:2] for s in sends(c.log)] == [(0, "raise"), (0, "clear"), (1, "escalate"), (2, "escalate")]
    assert c.event(Acked(T0 + 50 * M, "郑浩")) == [Stop("a1", "acked", T0 + 50 * M)]


def test_shelving_suppresses_until_it_ends_then_announces_again() -> None:
    c = Clock(start())
    c.run(T0 + 5 * M)
    c.event(Shelved(T0 + 5 * M, T0 + 65 * M))
    assert esc.suppressed(c.state, T0 + 30 * M)
    c.run(T0 + 64 * M)
    assert len(sends(c.log)) == 1  # nothing while shelved
    c.run(T0 + 200 * M)
    # re-announced at 65, then the paused clock: step 1 was due at 15 = 10 min of unshelved time after 65
    assert sends(c.log)[1:] == [(0, "repeat", 65, ("张伟", "李娜")), (1, "escalate", 75, ("吴芳",)),
                                (2, "escalate", 105, ("郑浩",))]  # fmt: skip


def test_shelve_is_clamped_to_its_max_duration_and_unshelve_ends_it() -> None:
    s = start(max_shelve="1h")
    s, _ = advance(s, Tick(T0))
    s, _ = advance(s, Shelved(T0 + M, T0 + 24 * 3600 * S))
    assert s.shelves == ((T0 + M, T0 + 61 * M),)
    s, actions = advance(s, Unshelved(T0 + 10 * M))
    assert sends(actions) == [(0, "repeat", 10, ("张伟", "李娜"))]
    s, actions = advance(s, Unshelved(T0 + 11 * M))
    assert actions == []  # not shelved any more


def test_maintenance_window_holds_notifications_but_not_the_record() -> None:
    window = (T0 - 60 * M, T0 + 30 * M)
    c = Clock(start(maintenance=(window,)))
    assert esc.suppressed(c.state, T0)
    assert next_due(c.state) == T0 + 30 * M
    c.run(T0 + 29 * M)
    assert c.log == []
    c.run(T0 + 120 * M)
    assert [(k, m) for _, k, m, _ in sends(c.log)] == [("raise", 30), ("escalate", 45), ("escalate", 75)]


def test_alert_that_clears_inside_maintenance_sends_nothing() -> None:
    c = Clock(start(maintenance=((T0, T0 + 60 * M),)))
    c.run(T0 + 10 * M)
    assert c.event(Cleared(T0 + 10 * M)) == [Stop("a1", "cleared", T0 + 10 * M)]
    assert c.run(T0 + 10 * 3600 * S) == [] and not any(isinstance(a, Send) for a in c.log)


def test_failed_delivery_escalates_to_the_next_step_at_once() -> None:
    c = Clock(start())
    c.run(T0 + M)
    actions = c.event(DeliveryFailed(T0 + 2 * M, 0, "张伟"))
    assert sends(actions) == [(1, "escalate", 2, ("吴芳",))]
    assert c.state.failed == ((0, "张伟"),)
    assert c.event(DeliveryFailed(T0 + 3 * M, 0, "李娜")) == []  # an older step: nothing more
    c.run(T0 + 100 * M)
    assert [s[0] for s in sends(c.log)] == [0, 1, 2]


def test_step_with_nobody_on_shift_goes_straight_to_the_next() -> None:
    s = plan("a1", T0, {**ON_SHIFT, "operator": [], "team_lead": []}, policy())
    s, actions = advance(s, Tick(T0))
    assert sends(actions) == [(0, "raise", 0, ()), (1, "escalate", 0, ("吴芳",))]


def test_late_tick_sends_every_overdue_step_once_and_one_repeat() -> None:
    s, actions = advance(start(repeat="10m"), Tick(T0 + 5 * 3600 * S))
    assert [(a.step, a.kind) for a in actions if isinstance(a, Send)] == [
        (0, "raise"),
        (1, "escalate"),
        (2, "escalate"),
    ]
    s, actions = advance(s, Tick(T0 + 5 * 3600 * S))
    assert actions == []


def test_restart_from_serialized_state_sends_the_next_step_exactly_once() -> None:
    c = Clock(start())
    c.run(T0 + 20 * M)  # steps 0 and 1 are in the outbox
    saved = json.dumps(esc.dump(c.state))
    restored = esc.load(json.loads(saved))
    assert restored == c.state
    # the process was down from minute 20 to minute 50: step 2 (due at 45) goes out once, at restart
    s, actions = advance(restored, Tick(T0 + 50 * M))
    assert sends(actions) == [(2, "escalate", 50, ("郑浩",))]
    s, actions = advance(esc.load(json.loads(json.dumps(esc.dump(s)))), Tick(T0 + 51 * M))
    assert actions == []
    # a restart before the step is due sends nothing early
    s, actions = advance(esc.load(json.loads(saved)), Tick(T0 + 30 * M))
    assert actions == [] and next_due(s) == T0 + 45 * M


EVENTS = st.lists(
    st.tuples(
        st.integers(0, 180),  # minute
        st.sampled_from(["tick", "ack", "clear", "shelve", "unshelve", "fail0", "fail1", "restart"]),
        st.integers(1, 120),
    ),
    max_size=25,
).map(lambda evs: sorted(evs, key=lambda e: e[0]))


@given(events=EVENTS, repeat=st.sampled_from([None, "7m"]), cac=st.booleans(),
       maint=st.sampled_from([(), ((T0 + 20 * M, T0 + 40 * M),)]))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_invariants(events: list[tuple[int, str, int]], repeat: str | None, cac: bool, maint: Any) -> None:
    s = start(maintenance=maint, repeat=repeat, continue_after_clear=cac)
    log: list[esc.Action] = []

    def check(state: EscalationState, out: list[esc.Action]) -> None:
        for a in out:
            if isinstance(a, Send) and a.kind != "clear":
                assert not esc.suppressed(state, a.at), a  # never inside maintenance or a shelve
                assert state.cleared_at is None or cac, a

    for minute, kind, arg in events:
        t = T0 + minute * M
        while (due := next_due(s)) is not None and due <= t:
            s, out = advance(s, Tick(due))
            check(s, out)
            log += out
        events_by_kind: dict[str, esc.Event] = {
            "tick": Tick(t),
            "ack": Acked(t, "x"),
            "clear": Cleared(t),
            "shelve": Shelved(t, t + arg * M),
            "unshelve": Unshelved(t),
            "fail0": DeliveryFailed(t, 0, "张伟"),
            "fail1": DeliveryFailed(t, 1, "吴芳"),
            "restart": Tick(t),
        }
        ev = events_by_kind[kind]
        if kind == "restart":
            s = esc.load(json.loads(json.dumps(esc.dump(s))))
        s, out = advance(s, ev)
        check(s, out)
        log += out
    steps = [a.step for a in log if isinstance(a, Send) and a.kind in ("raise", "escalate")]
    assert steps == list(range(len(steps)))  # each step once, in order
    acked = [a.at for a in log if isinstance(a, Stop) and a.reason == "acked"]
    stops = [a for a in log if isinstance(a, Stop)]
    assert len(stops) <= 1
    if stops:
        assert not [a for a in log if isinstance(a, Send) and a.at > stops[0].at]
    if acked:
        assert s.acked_at == acked[0]
