"""The Store contract (plantpulse.store.base), run against every backend in conftest.BACKENDS.

Timestamps are whole milliseconds: SPEC §3 promises millisecond precision and PostgreSQL
keeps microseconds, so nothing finer may be asserted here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from plantpulse.alerts import AlertEvent, AlertState, JournalEntry, Severity, alert_id
from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry
from plantpulse.store import Bucket, Store, TagInfo

StoreFactory = Callable[[], Store]

MS = 1_000_000
S = 1_000 * MS
MIN = 60 * S
T0 = 1_699_999_980 * S  # a whole minute since the epoch
assert T0 % MIN == 0

CURRENT = "线体1/焊机01/电流"
VOLTAGE = "线体1/焊机01/电压"
SPEED = "line2/robot/speed"


def batch(
    reg: TagRegistry, rows: list[tuple[int, str, float]] | list[tuple[int, str, float, int]]
) -> SampleBatch:
    return SampleBatch.make(
        reg,
        [r[0] for r in rows],
        [reg.id(r[1]) for r in rows],
        [r[2] for r in rows],
        [r[3] if len(r) > 3 else 0 for r in rows],  # type: ignore[misc]
    )


def expected(
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    *,
    start: int,
    end: int,
    bucket: int,
) -> list[Bucket]:
    """The contract computed independently in numpy: whole epoch-aligned buckets overlapping
    [start, end), bad samples left out, empty buckets omitted."""
    lo, hi = start - start % bucket, -((-end) // bucket) * bucket
    m = (quality != Quality.BAD) & (ts >= lo) & (ts < hi)
    ts, value = ts[m], value[m]
    keys = ts - ts % bucket
    out = []
    for k in np.unique(keys):
        sel = keys == k
        v, t = value[sel], ts[sel]
        out.append(
            Bucket(
                int(k),
                float(v.min()),
                float(v.max()),
                float(v.mean()),
                float(v[np.argmax(t)]),
                int(sel.sum()),
            )
        )
    return out


def assert_buckets(got: list[Bucket], want: list[Bucket]) -> None:
    assert [b.start for b in got] == [b.start for b in want]
    assert [b.count for b in got] == [b.count for b in want]
    for g, w in zip(got, want, strict=True):
        assert (g.min, g.max, g.last) == (w.min, w.max, w.last), g.start
        assert g.avg == pytest.approx(w.avg, rel=1e-12, abs=1e-9), g.start


def random_data(
    seed: int, n: int, span: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    """n samples of one tag at distinct whole-ms instants in [T0, T0 + span), shuffled, ~10% bad
    (some of them NaN) and ~10% uncertain."""
    rng = np.random.default_rng(seed)
    ts = T0 + rng.choice(span // MS, size=n, replace=False).astype(np.int64) * MS
    value = np.round(rng.normal(200.0, 15.0, n), 3)
    quality = rng.choice([0, 1, 2], size=n, p=[0.8, 0.1, 0.1]).astype(np.uint8)
    value[(quality == 2) & (rng.random(n) < 0.5)] = np.nan
    return ts, value, quality


# ---------------------------------------------------------------------------- tags


async def test_tags_registered_updated_and_auto_created(store: Store) -> None:
    await store.register_tags(
        [TagInfo(CURRENT, "线体1/焊机01", "A", "焊接电流"), TagInfo(SPEED, "line2/robot")]
    )
    await store.register_tags([TagInfo(SPEED, "line2/robot", "m/s", "TCP speed")])
    reg = TagRegistry()
    assert await store.write_samples(batch(reg, [(T0, VOLTAGE, 21.5)]), "b1")
    assert await store.tags() == [  # sorted by name, code point order (电压 U+538B < 电流 U+6D41)
        TagInfo(SPEED, "line2/robot", "m/s", "TCP speed"),
        TagInfo(VOLTAGE, "线体1/焊机01", None, None),  # first seen in a batch: asset from the name
        TagInfo(CURRENT, "线体1/焊机01", "A", "焊接电流"),
    ]


# ---------------------------------------------------------------------------- samples


async def test_samples_round_trip_utf8(store: Store) -> None:
    reg = TagRegistry(["unrelated/registry/id0"])  # registry ids are process-local, never store ids
    rows = [(T0 + i * 250 * MS, CURRENT if i % 2 else VOLTAGE, 100.0 + i * 0.125) for i in range(20)]
    assert await store.write_samples(batch(reg, rows), "b1")
    got = await store.series(CURRENT, T0, T0 + 10 * S, MS)  # 1 ms buckets: one sample each
    want = [(t, v) for t, tag, v in rows if tag == CURRENT]
    assert [(b.start, b.last) for b in got] == want
    assert all(b.count == 1 and b.min == b.max == b.avg == b.last for b in got)
    latest = await store.latest([CURRENT, VOLTAGE])
    assert latest == {
        CURRENT: Sample(rows[19][0], CURRENT, rows[19][2]),
        VOLTAGE: Sample(rows[18][0], VOLTAGE, rows[18][2]),
    }


async def test_nan_is_stored_as_bad(store: Store) -> None:
    reg = TagRegistry()
    # Built without SampleBatch.make, so the quality column still claims GOOD for the NaN.
    b = SampleBatch(
        np.array([T0, T0 + S], dtype=np.int64),
        np.array([reg.id(CURRENT)] * 2, dtype=np.int32),
        np.array([150.0, np.nan]),
        np.zeros(2, dtype=np.uint8),
        reg,
    )
    assert await store.write_samples(b, "b1")
    last = (await store.latest([CURRENT]))[CURRENT]
    assert last.ts == T0 + S
    assert math.isnan(last.value)
    assert last.quality == Quality.BAD
    for bucket in (MS, MIN):  # raw and rollup: the NaN is not aggregated
        (only,) = await store.series(CURRENT, T0, T0 + MIN, bucket)
        assert (only.count, only.min, only.max, only.last) == (1, 150.0, 150.0, 150.0)


async def test_same_batch_id_twice_stores_once(store: Store) -> None:
    reg = TagRegistry()
    b = batch(reg, [(T0 + i * S, CURRENT, float(i)) for i in range(10)])
    assert await store.write_samples(b, "spool-0001") is True
    assert await store.write_samples(b, "spool-0001") is False
    (raw,) = await store.series(CURRENT, T0, T0 + MIN, 30 * S)
    (rolled,) = await store.series(CURRENT, T0, T0 + MIN, MIN)
    assert raw.count == rolled.count == 10
    assert rolled.avg == 4.5


async def test_batch_id_is_not_consumed_by_an_empty_or_other_batch(store: Store) -> None:
    reg = TagRegistry()
    assert await store.write_samples(SampleBatch.empty(reg), "empty") is True
    assert await store.write_samples(SampleBatch.empty(reg), "empty") is False
    assert await store.write_samples(batch(reg, [(T0, CURRENT, 1.0)]), "other")
    assert (await store.latest())[CURRENT].value == 1.0


async def test_samples_are_keyed_by_tag_and_ts(store: Store) -> None:
    """A replay under a NEW batch id (or a duplicate inside a batch) never doubles a sample,
    neither raw nor in the rollup; the first write of a (tag, ts) wins."""
    reg = TagRegistry()
    assert await store.write_samples(batch(reg, [(T0, CURRENT, 1.0), (T0 + S, CURRENT, 2.0)]), "a")
    assert await store.write_samples(
        batch(reg, [(T0 + S, CURRENT, 99.0), (T0 + 2 * S, CURRENT, 3.0), (T0 + 2 * S, CURRENT, 77.0)]), "b"
    )
    (raw,) = await store.series(CURRENT, T0, T0 + MIN, 30 * S)
    (rolled,) = await store.series(CURRENT, T0, T0 + MIN, MIN)
    for b in (raw, rolled):
        assert (b.count, b.min, b.max, b.avg, b.last) == (3, 1.0, 3.0, 2.0, 3.0)


async def test_latest(store: Store) -> None:
    reg = TagRegistry()
    # Out of order inside a batch and across batches: latest means the largest ts.
    await store.write_samples(batch(reg, [(T0 + 5 * S, CURRENT, 5.0), (T0 + 1 * S, CURRENT, 1.0)]), "a")
    await store.write_samples(batch(reg, [(T0 + 3 * S, CURRENT, 3.0), (T0 + 2 * S, SPEED, 0.5, 1)]), "b")
    await store.register_tags([TagInfo(VOLTAGE, "线体1/焊机01", "V")])  # no samples yet
    assert await store.latest() == {
        CURRENT: Sample(T0 + 5 * S, CURRENT, 5.0),
        SPEED: Sample(T0 + 2 * S, SPEED, 0.5, Quality.UNCERTAIN),
    }
    assert await store.latest([SPEED, "no/such/tag", VOLTAGE]) == {
        SPEED: Sample(T0 + 2 * S, SPEED, 0.5, Quality.UNCERTAIN)
    }
    assert await store.latest([]) == {}


@pytest.mark.parametrize("bucket", [MS * 250, 10 * S, 7 * S])
async def test_series_raw_matches_numpy(store: Store, bucket: int) -> None:
    ts, value, quality = random_data(1, 3000, 10 * MIN)
    reg = TagRegistry()
    for i, part in enumerate(np.array_split(np.arange(len(ts)), 4)):
        b = SampleBatch.make(reg, ts[part], np.full(len(part), reg.id(CURRENT)), value[part], quality[part])
        assert await store.write_samples(b, f"raw-{i}")
    await store.write_samples(batch(reg, [(T0 + S, VOLTAGE, -1000.0)]), "other-tag")  # must not leak in
    for start, end in [(T0, T0 + 10 * MIN), (T0 + 95 * S + 3 * MS, T0 + 4 * MIN + 1 * MS), (T0 - MIN, T0)]:
        got = await store.series(CURRENT, start, end, bucket)
        assert_buckets(got, expected(ts, value, quality, start=start, end=end, bucket=bucket))
    assert await store.series("no/such/tag", T0, T0 + MIN, bucket) == []


@pytest.mark.parametrize("bucket", [MIN, 5 * MIN, 60 * MIN])
async def test_series_rollup_matches_numpy(store: Store, bucket: int) -> None:
    """Several batches hit the same minutes in shuffled order, so the incremental merge of min,
    max, sum, count and last (by ts, not by arrival) is what is checked."""
    ts, value, quality = random_data(2, 6000, 90 * MIN)
    reg = TagRegistry()
    for i, part in enumerate(np.array_split(np.arange(len(ts)), 7)):
        b = SampleBatch.make(reg, ts[part], np.full(len(part), reg.id(CURRENT)), value[part], quality[part])
        assert await store.write_samples(b, f"roll-{i}")
    for start, end in [(T0, T0 + 90 * MIN), (T0 + 7 * MIN + 5 * S, T0 + 61 * MIN + 30 * S)]:
        got = await store.series(CURRENT, start, end, bucket)
        want = expected(ts, value, quality, start=start, end=end, bucket=bucket)
        assert len(want) >= 2
        assert_buckets(got, want)


async def test_series_rejects_a_non_positive_bucket(store: Store) -> None:
    with pytest.raises(ValueError, match="bucket"):
        await store.series(CURRENT, T0, T0 + MIN, 0)


# ---------------------------------------------------------------------------- alerts


def ev(
    kind: str,
    raised_at: int,
    at: int | None = None,
    *,
    rule: str = "weld-current-deviation",
    tag: str = CURRENT,
    severity: Severity = "high",
    value: float = 212.5,
) -> AlertEvent:
    return AlertEvent(
        kind,  # type: ignore[arg-type]
        rule,
        tag,
        severity,
        raised_at,
        raised_at if at is None else at,
        value,
        "焊接电流偏差 +7.5 A,已持续 3s",
        notify="weld-quality",
    )


ON_SHIFT = {"operator": ["张伟"], "team_lead": ["李娜", "王芳"], "quality_engineer": ["Zoë Müller"]}


async def test_alert_raise_clear_ack_shelve_and_journal(store: Store) -> None:
    r = T0 + 3 * S
    aid = alert_id("weld-current-deviation", CURRENT, r)
    assert await store.write_alert_events([ev("raised", r)], "e1", {aid: ON_SHIFT})
    a = await store.alert(aid)
    assert a is not None
    assert (a.id, a.rule, a.tag, a.asset, a.severity, a.raised_at, a.value) == (
        aid, "weld-current-deviation", CURRENT, "线体1/焊机01", "high", r, 212.5,
    )  # fmt: skip
    assert (a.message, a.notify, a.on_shift) == ("焊接电流偏差 +7.5 A,已持续 3s", "weld-quality", ON_SHIFT)
    assert a.state(r) == AlertState.UNACK_ACTIVE

    acked = await store.acknowledge(aid, "张伟", r + 10 * S, comment="换了焊嘴", source="board")
    assert acked is not None
    assert (acked.acked_at, acked.acked_by, acked.ack_comment) == (r + 10 * S, "张伟", "换了焊嘴")
    assert acked.state(r + 10 * S) == AlertState.ACK_ACTIVE
    again = await store.acknowledge(aid, "李娜", r + 20 * S, comment="second")
    assert again == acked  # once: a second ack changes nothing and journals nothing

    assert await store.write_alert_events([ev("cleared", r, r + 30 * S)], "e2")
    shelved = await store.shelve(aid, "李娜", r + 40 * S, r + 3600 * S, "传感器维修")
    assert shelved is not None
    assert (shelved.cleared_at, shelved.shelved_until, shelved.shelve_reason) == (
        r + 30 * S,
        r + 3600 * S,
        "传感器维修",
    )
    assert shelved.state(r + 50 * S) == AlertState.SHELVED
    assert shelved.state(r + 3600 * S) == AlertState.NORMAL
    assert await store.alert(aid) == shelved

    await store.append_journal(
        [JournalEntry(aid, r + 5 * S, "notified", "notifier", {"channel": "wecom", "to": ["张伟"]})]
    )
    journal = await store.journal(aid)
    assert [(j.at, j.action, j.actor) for j in journal] == [
        (r, "raised", "engine"),
        (r + 5 * S, "notified", "notifier"),
        (r + 10 * S, "acknowledged", "张伟"),
        (r + 30 * S, "cleared", "engine"),
        (r + 40 * S, "shelved", "李娜"),
    ]
    assert journal[1].detail == {"channel": "wecom", "to": ["张伟"]}
    assert journal[2].detail == {"source": "board", "comment": "换了焊嘴"}
    assert all(j.alert_id == aid for j in journal)


async def test_unknown_alert(store: Store) -> None:
    assert await store.alert("nope") is None
    assert await store.acknowledge("nope", "张伟", T0) is None
    assert await store.shelve("nope", "张伟", T0, T0 + S, "x") is None
    assert await store.journal("nope") == []


async def test_replay_is_idempotent(store: Store) -> None:
    r = T0 + S
    aid = alert_id("weld-current-deviation", CURRENT, r)
    events = [ev("raised", r), ev("cleared", r, r + 9 * S)]
    assert await store.write_alert_events(events, "e1", {aid: ON_SHIFT}) is True
    first = (await store.alert(aid), await store.journal(aid))
    assert await store.write_alert_events(events, "e1", {aid: ON_SHIFT}) is False
    # The same transitions under a new batch id (a re-run after a crash) double nothing either,
    # and a later clear of an already cleared alert does not move cleared_at.
    assert await store.write_alert_events([*events, ev("cleared", r, r + 99 * S)], "e2", {aid: {}}) is True
    entry = JournalEntry(aid, r + 2 * S, "notified", "notifier", {"channel": "sms"})
    await store.append_journal([entry])
    await store.append_journal([entry])
    alert, journal = await store.alert(aid), await store.journal(aid)
    assert alert == first[0]
    assert alert is not None and alert.cleared_at == r + 9 * S and alert.on_shift == ON_SHIFT
    assert [(j.at, j.action) for j in journal] == [
        (r, "raised"),
        (r + 2 * S, "notified"),
        (r + 9 * S, "cleared"),
    ]
    assert [j for j in journal if j.action != "notified"] == first[1]


async def test_raise_and_clear_in_one_call_in_any_order(store: Store) -> None:
    r = T0 + S
    aid = alert_id("weld-current-deviation", CURRENT, r)
    # cleared listed before raised, e.g. merged from two partitions: still one alert with its snapshot
    assert await store.write_alert_events(
        [ev("cleared", r, r + 4 * S), ev("raised", r)], "e1", {aid: ON_SHIFT}
    )
    a = await store.alert(aid)
    assert a is not None
    assert (a.raised_at, a.cleared_at, a.on_shift) == (r, r + 4 * S, ON_SHIFT)
    assert a.state(r + 5 * S) == AlertState.UNACK_CLEARED
    assert [j.action for j in await store.journal(aid)] == ["raised", "cleared"]


async def test_clear_of_an_unknown_alert_inserts_it(store: Store) -> None:
    r = T0 + S
    aid = alert_id("weld-current-deviation", CURRENT, r)
    assert await store.write_alert_events([ev("cleared", r, r + 4 * S)], "e1")
    a = await store.alert(aid)
    assert a is not None and (a.raised_at, a.cleared_at, a.value) == (r, r + 4 * S, 212.5)
    assert [j.action for j in await store.journal(aid)] == ["cleared"]


async def test_alert_filters_and_order(store: Store) -> None:
    specs = [  # (rule, tag, raised_at offset in s, cleared)
        ("hot", "line1/weld01/temp", 10, False),
        ("hot", "line1/weld02/temp", 20, True),
        ("cold", "line1/temp", 30, False),  # asset "line1" itself
        ("hot", "line10/weld01/temp", 40, False),  # not in the line1 subtree
        ("cold", "line1/weld01/sub/x", 50, True),
        ("hot", "Line1/weld01/temp", 60, False),  # case matters
        ("hot", "line1_/weld01/temp", 70, False),  # _ is no wildcard
    ]
    events: list[AlertEvent] = []
    for rule, tag, off, cleared in specs:
        events.append(ev("raised", T0 + off * S, rule=rule, tag=tag))
        if cleared:
            events.append(ev("cleared", T0 + off * S, T0 + (off + 5) * S, rule=rule, tag=tag))
    assert await store.write_alert_events(events, "e1")

    async def tags(**kw: object) -> list[str]:
        return [a.tag for a in await store.alerts(**kw)]  # type: ignore[arg-type]

    everything = [tag for _, tag, _, _ in reversed(specs)]
    assert await tags() == everything  # newest first
    assert await tags(asset="line1") == [
        "line1/weld01/sub/x",
        "line1/temp",
        "line1/weld02/temp",
        "line1/weld01/temp",
    ]
    assert await tags(asset="line1/weld01") == ["line1/weld01/sub/x", "line1/weld01/temp"]
    assert await tags(asset="line1/weld01/") == ["line1/weld01/sub/x", "line1/weld01/temp"]
    assert await tags(asset="line1/weld0") == []
    assert await tags(rule="cold") == ["line1/weld01/sub/x", "line1/temp"]
    assert await tags(active_only=True) == [t for _, t, _, c in reversed(specs) if not c]
    assert await tags(start=T0 + 20 * S, end=T0 + 50 * S) == [
        "line10/weld01/temp",
        "line1/temp",
        "line1/weld02/temp",
    ]
    assert await tags(start=T0 + 60 * S) == ["line1_/weld01/temp", "Line1/weld01/temp"]
    assert await tags(end=T0 + 10 * S) == []
    assert await tags(asset="line1", rule="hot", active_only=True, start=T0, end=T0 + 100 * S) == [
        "line1/weld01/temp"
    ]
    assert await tags(limit=2) == everything[:2]


async def test_alert_pages_walk_everything_once_even_when_alerts_share_an_instant(store: Store) -> None:
    # seven alerts, five of them raised at the same instant (a glob rule over a line that failed at once)
    events = [ev("raised", T0 + 5 * S, tag=f"line1/weld0{i}/current") for i in range(5)]
    events += [ev("raised", T0 + 9 * S, tag="line2/a/x"), ev("raised", T0 + S, tag="line2/b/x")]
    assert await store.write_alert_events(events, "e1")
    everything = [(a.raised_at, a.id) for a in await store.alerts()]
    assert len(everything) == 7
    assert everything == sorted(everything, reverse=True)  # newest first, then id descending
    walked: list[tuple[int, str]] = []
    cursor: tuple[int, str] | None = None
    while page := await store.alerts(limit=2, before=cursor):
        walked += [(a.raised_at, a.id) for a in page]
        cursor = walked[-1]
    assert walked == everything
    # the cursor combines with the other filters
    after_first = await store.alerts(before=everything[0], asset="line1", start=T0, end=T0 + 10 * S)
    assert [(a.raised_at, a.id) for a in after_first] == everything[1:6]


async def test_on_shift_snapshot_round_trip(store: Store) -> None:
    raised = [ev("raised", T0 + i * S, tag=f"线体1/焊机0{i}/电流") for i in range(1, 4)]
    snapshots = {
        raised[0].alert_id: {"班组长": ["王小明"], "operator": ["李雷", "韩梅梅"]},
        raised[1].alert_id: {},
    }  # the third has none at all
    assert await store.write_alert_events(raised, "e1", snapshots)
    got = {a.id: a.on_shift for a in await store.alerts()}
    assert got == {
        raised[0].alert_id: snapshots[raised[0].alert_id],
        raised[1].alert_id: {},
        raised[2].alert_id: {},
    }


async def test_everything_survives_a_restart(store: Store, make_store: StoreFactory) -> None:
    reg = TagRegistry()
    ts, value, quality = random_data(3, 500, 5 * MIN)
    await store.register_tags([TagInfo(CURRENT, "线体1/焊机01", "A", "焊接电流")])
    assert await store.write_samples(
        SampleBatch.make(reg, ts, np.full(len(ts), reg.id(CURRENT)), value, quality), "s1"
    )
    r = T0 + 2 * S
    aid = alert_id("weld-current-deviation", CURRENT, r)
    assert await store.write_alert_events([ev("raised", r)], "e1", {aid: ON_SHIFT})
    await store.acknowledge(aid, "张伟", r + S, "ok")
    before = (
        await store.tags(),
        await store.latest(),
        await store.series(CURRENT, T0, T0 + 5 * MIN, MIN),
        await store.series(CURRENT, T0, T0 + 5 * MIN, 10 * S),
        await store.alerts(),
        await store.journal(aid),
    )
    await store.close()

    again = make_store()
    await again.open()
    try:
        after = (
            await again.tags(),
            await again.latest(),
            await again.series(CURRENT, T0, T0 + 5 * MIN, MIN),
            await again.series(CURRENT, T0, T0 + 5 * MIN, 10 * S),
            await again.alerts(),
            await again.journal(aid),
        )
        assert after == before
        assert after[4][0].on_shift == ON_SHIFT and after[4][0].acked_by == "张伟"
        # Batch ids survive too: a spool replayed after the restart is still skipped.
        reg2 = TagRegistry(["x/y/z"])  # a new process: different registry ids
        assert (
            await again.write_samples(
                SampleBatch.make(reg2, ts, np.full(len(ts), reg2.id(CURRENT)), value), "s1"
            )
            is False
        )
        assert await again.write_alert_events([ev("raised", r)], "e1") is False
        assert await again.write_samples(batch(reg2, [(T0 + 9 * MIN, CURRENT, 1.5)]), "s2")
        assert (await again.latest([CURRENT]))[CURRENT] == Sample(T0 + 9 * MIN, CURRENT, 1.5)
        assert [t.name for t in await again.tags()] == [CURRENT]  # the same tag id, not a new tag
    finally:
        await again.close()
