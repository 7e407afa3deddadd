"""The approval chain stepped by hand: order, roles, four eyes, reminders, escalation, outcome."""

from __future__ import annotations

from plantpulse.approvals.chain import (
    Accept,
    Activate,
    Approve,
    ChainState,
    Notified,
    Notify,
    Refuse,
    Reject,
    Tick,
    advance,
    next_due,
    plan,
)

H = 3600 * 10**9
T0 = 1_767_225_600 * 10**9
LEVELS = ("quality_engineer", "team_lead", "workshop_director")
QE, TL, WD = frozenset({"quality_engineer"}), frozenset({"team_lead"}), frozenset({"workshop_director"})


def start(**kw: object) -> ChainState:
    return plan(7, LEVELS, proposed_by="吴芳", at=T0, remind=4 * H, escalate_after=24 * H,
                escalate_to=("workshop_director",), **kw)  # type: ignore[arg-type]  # fmt: skip


def refusal(s: ChainState, e: Approve | Reject) -> str:
    s2, actions = advance(s, e)
    assert s2 == s, "a refused event changes nothing"
    assert len(actions) == 1 and isinstance(actions[0], Refuse)
    return actions[0].reason


def test_three_levels_in_order_activate_the_change() -> None:
    s = plan(7, LEVELS, proposed_by="吴芳", at=T0)
    s, a = advance(s, Approve(T0 + 1, "陈工", QE | frozenset({"operator"}), "ok"))
    assert a == [Accept(0, "quality_engineer")] and s.level == 1
    s, a = advance(s, Approve(T0 + 2, "李娜", TL))
    assert a == [Accept(1, "team_lead")]
    s, a = advance(s, Approve(T0 + 3, "郑浩", WD))
    assert a == [Accept(2, "workshop_director"), Activate(7)]
    assert (s.outcome, s.decided_by, s.decided_at) == ("approved", "郑浩", T0 + 3)
    assert [x.by for x in s.signatures] == ["陈工", "李娜", "郑浩"]
    assert refusal(s, Approve(T0 + 4, "x", WD)) == "change #7 is already approved (live)"


def test_wrong_role_self_approval_out_of_order_and_double_signing_are_refused() -> None:
    s = start()
    assert refusal(s, Approve(T0, "王强", frozenset({"operator"}))) == (
        "王强 is not a quality_engineer: level 1 of 3 (quality_engineer) of change #7 needs one"
    )
    assert refusal(s, Approve(T0, "吴芳", QE)) == "吴芳 proposed change #7 and cannot approve it"
    assert refusal(s, Approve(T0, "郑浩", WD)) == (
        "out of order: change #7 waits for level 1 of 3 (quality_engineer)"
        " before level 3 of 3 (workshop_director)"
    )
    s, _ = advance(s, Approve(T0, "陈工", QE | TL))
    assert refusal(s, Approve(T0, "陈工", QE | TL)) == (
        "陈工 already approved level 1 of 3 (quality_engineer) of change #7;"
        " level 2 of 3 (team_lead) needs another person"
    )


def test_rejection_by_a_waiting_or_later_role_or_the_proposer() -> None:
    s = start()
    assert refusal(s, Reject(T0, "王强", frozenset({"operator"}), "no")) == (
        "王强 cannot reject change #7: only its proposer"
        " or a quality_engineer, team_lead, workshop_director can"
    )
    assert refusal(s, Reject(T0, "郑浩", WD, " ")) == "a rejection needs a reason"
    r, a = advance(s, Reject(T0 + 5, "郑浩", WD, "too loose"))
    assert a == [Accept(0, "quality_engineer")]
    assert (r.outcome, r.decided_by, r.reason) == ("rejected", "郑浩", "too loose")
    assert refusal(r, Approve(T0 + 6, "陈工", QE)) == "change #7 was rejected by 郑浩"
    withdrawn, _ = advance(s, Reject(T0 + 5, "吴芳", frozenset(), "wrong file"))
    assert withdrawn.outcome == "rejected"


def test_request_then_reminders_then_one_escalation_then_the_outcome() -> None:
    s = start()
    assert next_due(s) == T0
    s, a = advance(s, Tick(T0))
    assert a == [Notify(7, 0, "request", ("quality_engineer",), (), ("吴芳",))]
    assert advance(s, Tick(T0))[1] == a, "due until recorded"
    s, _ = advance(s, Notified(T0, 0, "request"))
    assert next_due(s) == T0 + 4 * H
    assert advance(s, Tick(T0 + 4 * H - 1))[1] == []
    s, a = advance(s, Tick(T0 + 4 * H))
    assert [n.kind for n in a if isinstance(n, Notify)] == ["reminder"]
    s, _ = advance(s, Notified(T0 + 4 * H + 7, 0, "reminder"))
    assert next_due(s) == T0 + 8 * H + 7  # the next reminder counts from the last one sent
    for t in range(2, 6):  # reminders every 4 h until the escalation at 24 h
        s, _ = advance(s, Notified(T0 + 4 * t * H, 0, "reminder"))
    s, a = advance(s, Tick(T0 + 24 * H))
    esc = [n for n in a if isinstance(n, Notify) and n.kind == "escalation"]
    assert esc == [Notify(7, 0, "escalation", ("workshop_director",), (), ("吴芳",))]
    s, _ = advance(s, Notified(T0 + 24 * H, 0, "escalation"))
    s, _ = advance(s, Notified(T0 + 24 * H, 0, "reminder"))
    assert [n.kind for n in advance(s, Tick(T0 + 48 * H))[1] if isinstance(n, Notify)] == ["reminder"]
    # an approval moves on: the next level is asked at once, and its escalation counts from then
    s, _ = advance(s, Approve(T0 + 30 * H, "陈工", QE))
    s, a = advance(s, Tick(T0 + 30 * H))
    assert a == [Notify(7, 1, "request", ("team_lead",), (), ("吴芳", "陈工"))]
    s, _ = advance(s, Notified(T0 + 30 * H, 1, "request"))
    s, _ = advance(s, Reject(T0 + 31 * H, "李娜", TL, "no"))
    s, a = advance(s, Tick(T0 + 31 * H))
    assert a == [Notify(7, 1, "outcome", (), ("吴芳", "陈工"), ("李娜",))]
    s, _ = advance(s, Notified(T0 + 31 * H, 1, "outcome"))
    assert next_due(s) is None


def test_an_emergency_change_is_reviewed_and_its_last_signature_activates_nothing() -> None:
    s = plan(9, ("team_lead",), proposed_by="郑浩", at=T0, emergency=True)
    s, a = advance(s, Approve(T0 + 1, "李娜", TL))
    assert a == [Accept(0, "team_lead")] and s.outcome == "approved"
    assert refusal(s, Approve(T0, "x", TL)) == "change #9 is already approved"
