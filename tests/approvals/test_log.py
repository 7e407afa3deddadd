"""The hash chain: every edit, deletion, rewrite and truncation (against a witness) is named."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from plantpulse.approvals.log import GENESIS, Entry, Record, canonical, rehash, seal, verify

T0 = 1_767_225_600_000_000_000


def chain(n: int) -> list[Record]:
    out: list[Record] = []
    for i in range(n):
        e = Entry(
            change=1 + i // 2, at=T0 + i, action="approved", actor=f"人{i}", detail={"level": i, "x": 0.1}
        )
        out.append(seal(out[-1] if out else None, e))
    return out


def test_an_intact_chain_verifies_and_links_to_genesis() -> None:
    recs = chain(5)
    assert recs[0].prev == GENESIS and [r.seq for r in recs] == [1, 2, 3, 4, 5]
    assert all(b.prev == a.hash for a, b in pairwise(recs))
    assert verify(recs) == []
    assert verify(recs, witness=(3, recs[2].hash)) == []


def test_the_hash_covers_every_field_over_a_canonical_serialisation() -> None:
    r = chain(1)[0]
    assert r.detail == canonical({"level": 0, "x": 0.1}) == '{"level":0,"x":0.1}'
    assert r.hash == rehash(r)
    for field, value in [("change", 2), ("at", T0 + 1), ("action", "rejected"), ("actor", "x"),
                         ("detail", '{"level":1,"x":0.1}'), ("prev", "1" * 64)]:  # fmt: skip
        edited = replace(r, **{field: value})  # type: ignore[arg-type]
        assert [str(f) for f in verify([edited])][-1].startswith("record 1: edited"), field


def test_an_edited_record_is_named() -> None:
    recs = chain(5)
    recs[2] = replace(recs[2], actor="mallory")
    assert [str(f) for f in verify(recs)] == [
        "record 3: edited: change #2 approved by mallory no longer matches its hash"
    ]


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_next_link() -> None:
    recs = chain(5)
    r = replace(recs[2], actor="mallory")
    recs[2] = replace(r, hash=rehash(r))
    assert [str(f) for f in verify(recs)] == [
        "record 4: does not follow record 3: that record was rewritten or replaced"
    ]


def test_deleted_records_show_as_a_gap() -> None:
    recs = chain(6)
    del recs[2:4]
    assert str(verify(recs)[0]) == "record 3: records 3-4 deleted (the sequence jumps to 5)"
    recs = chain(3)
    del recs[0]
    assert str(verify(recs)[0]) == "record 1: record 1 deleted (the sequence jumps to 2)"


def test_a_truncated_tail_is_found_only_against_a_witness() -> None:
    recs = chain(5)
    seen = (5, recs[4].hash)
    assert verify(recs[:3]) == []
    assert [str(f) for f in verify(recs[:3], witness=seen)] == [
        f"record 5: deleted: the log ends at record 3, but record 5 ({recs[4].hash[:12]}…) was seen"
    ]
