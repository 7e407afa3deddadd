"""Each condition kind stepped over compact series (1 step = 1 s), against hand-worked alerts."""

from __future__ import annotations

import math

import pytest

from plantpulse.rules.ruletest import expand
from plantpulse.samples import Sample

from .helpers import S, alerts_of, rules, run
from .reference import Alert, reference_alerts


def series(**tags: str) -> list[Sample]:
    out = [
        Sample(t, tag.replace("__", "/"), v, q)
        for tag, vals in tags.items()
        for t, v, q in expand(vals, 0, S)
    ]
    return sorted(out, key=lambda s: s.ts)


def A(rule: str, tag: str, raised: float, cleared: float | None, value: float | None) -> Alert:
    return Alert(rule, tag, round(raised * S), None if cleared is None else round(cleared * S), value)


CASES = [
    pytest.param(
        "{id: r, tag: a/x, above: 10, for: 2s, severity: low}",
        {"a__x": "5 11 12 13 5 11 12 5"},
        [A("r", "a/x", 3, 4, 12), A("r", "a/x", 7, 7, 12)],
        id="above-for: fires at t0+for, value is the last before raised_at; >= edge",
    ),
    pytest.param(
        "{id: r, tag: a/x, above: 10, for: 2s, severity: low}",
        {"a__x": "11 _ 5"},
        [A("r", "a/x", 2, 2, 11)],
        id="above-for: a false sample exactly at t0+for still fires",
    ),
    pytest.param(
        "{id: r, tag: a/x, above: 10, for: 3s, severity: low}",
        {"a__x": "11 12 bad 13 14"},
        [],
        id="bad sample resets pending",
    ),
    pytest.param(
        "{id: r, tag: a/x, above: 10, clear: {limit: 8, for: 2s}, severity: low}",
        {"a__x": "11 9 11 7 bad 7 7 7 9 7 7"},
        [A("r", "a/x", 0, 7, 11)],
        id="hysteresis: band keeps active, bad resets pending clear, clear.for",
    ),
    pytest.param(
        "{id: r, tag: a/x, below: 0, severity: low}",
        {"a__x": "1 -1 -2 0 -1"},
        [A("r", "a/x", 1, 3, -1), A("r", "a/x", 4, None, -1)],
        id="below: one stream, new alert only after clear; active at end",
    ),
    pytest.param(
        "{id: r, tag: a/x, outside: [0, 10], clear: {limit: [2, 8]}, severity: low}",
        {"a__x": "5 11 9 5 -1 1 2"},
        [A("r", "a/x", 1, 3, 11), A("r", "a/x", 4, 6, -1)],
        id="outside with inner clear band",
    ),
    pytest.param(
        "{id: r, tag: a/x, deviation: {setpoint: '{asset}/sp', limit: 5}, for: 3s,"
        " clear: {limit: 4, for: 1s}, severity: high}",
        {"a__sp": "100 _ _ _ _ _ _ 110", "a__x": "100 106 107 106 106 103 103 103 103"},
        [A("r", "a/x", 4, 6, 106)],
        id="deviation with setpoint tag",
    ),
    pytest.param(
        "{id: r, tag: a/x, deviation: {setpoint: '{asset}/sp', limit: 5}, severity: high}",
        {"a__x": "100 100", "a__sp": "_ _ 90 100"},
        [A("r", "a/x", 2, 3, 100)],
        id="deviation re-evaluated at setpoint samples (zero-order hold)",
    ),
    pytest.param(
        "{id: r, tag: a/x, rate: {per: 1s, above: 2}, severity: low}",
        {"a__x": "0 1 4 5 5"},
        [A("r", "a/x", 2, 3, 4)],
        id="rate: change per second between consecutive samples",
    ),
    pytest.param(
        "{id: r, tag: a/x, stale: 3s, severity: low}",
        {"a__x": "1 2 _ _ _ _ 3 _ _"},
        [A("r", "a/x", 4, 6, 2), A("r", "a/x", 9, None, 3)],
        id="stale: fires at last+D, clears at next sample; the end watermark fires it",
    ),
    pytest.param(
        "{id: r, tag: a/x, expr: 'value > y * 2 and abs(y) < 10', severity: low}",
        {"a__x": "5 5 5 5", "a__y": "_ 2 3 20"},
        [A("r", "a/x", 1, 2, 5)],
        id="expr over a sibling tag",
    ),
]


@pytest.mark.parametrize(("rule", "data", "expected"), CASES)
def test_kind(rule: str, data: dict[str, str], expected: list[Alert]) -> None:
    rs = rules(f"rules:\n  - {rule}\n")
    samples = series(**data)
    end = 9 * S if "stale" in rule else None
    got = alerts_of(run(rs, samples, end=end))
    assert got == expected
    if end is None:
        assert reference_alerts(rs, samples) == expected  # the reference agrees by hand, too


def test_watermark_never_fires_early_and_advance_does() -> None:
    from plantpulse.rules.engine import Engine
    from plantpulse.samples import SampleBatch, TagRegistry

    rs = rules("rules:\n  - {id: r, tag: a/x, above: 10, for: 5s, severity: low}\n")
    tags = TagRegistry()
    eng = Engine(rs, tags)
    assert eng.process(SampleBatch.from_samples(tags, [Sample(0, "a/x", 11.0)])) == []
    assert eng.advance(4 * S) == []
    assert eng.watermark == 4 * S
    (ev,) = eng.advance(5 * S)
    assert (ev.kind, ev.raised_at, ev.value) == ("raised", 5 * S, 11.0)


def test_late_samples_dropped_and_counted_and_bad_counted() -> None:
    from plantpulse.rules.engine import Engine
    from plantpulse.samples import Quality, SampleBatch, TagRegistry

    rs = rules("rules:\n  - {id: r, tag: a/x, above: 10, severity: low}\n")
    tags = TagRegistry()
    eng = Engine(rs, tags)
    eng.process(SampleBatch.from_samples(tags, [Sample(5 * S, "a/x", 1.0), Sample(6 * S, "a/x", math.nan)]))
    events = eng.process(SampleBatch.from_samples(tags, [Sample(4 * S, "a/x", 99.0, Quality.GOOD)]))
    assert events == []
    st = eng.stats
    assert (st.samples, st.bad_samples, st.late_dropped) == (2, 1, 1)


def test_glob_star_stays_in_segment_and_new_tags_match_lazily() -> None:
    from plantpulse.rules.engine import Engine
    from plantpulse.samples import SampleBatch, TagRegistry

    rs = rules(
        "rules:\n  - {id: r, tag: 'l1/*/t', above: 0, severity: low}\n"
        "  - {id: d, tag: 'l1/**', above: 0, severity: low}\n"
    )
    tags = TagRegistry()
    eng = Engine(rs, tags)
    eng.process(SampleBatch.from_samples(tags, [Sample(0, "l1/a/t", 1.0)]))
    events = eng.process(
        SampleBatch.from_samples(tags, [Sample(S, "l1/a/b/t", 1.0), Sample(S, "l1/b/t", 1.0)])
    )
    assert sorted((e.rule, e.tag) for e in events) == [("d", "l1/a/b/t"), ("d", "l1/b/t"), ("r", "l1/b/t")]
    assert eng.stats.raised == {"r": 2, "d": 3}


def test_message_template_and_default() -> None:
    rs = rules(
        "rules:\n"
        "  - id: w\n    tag: a/x\n    deviation: {setpoint: 100, limit: 5}\n    for: 3s\n    severity: high\n"
        "    notify: weld\n    message: '焊接电流偏差 {deviation:+.1f} A,已持续 {duration} ({asset})'\n"
        "  - {id: h, tag: a/x, above: 10, severity: low}\n"
    )
    events = run(rs, series(a__x="107 107 107 107"))
    by = {e.rule: e for e in events}
    assert by["w"].message == "焊接电流偏差 +7.0 A,已持续 3s (a)"
    assert by["w"].notify == "weld"
    assert by["h"].message == "a/x = 107 above 10"


def test_stale_duration_is_the_silence_not_a_for_of_zero() -> None:
    """The demo's stale rule said "焊接电流 0ms 无更新": {duration} was the rule's ``for`` (none).
    For a stale rule it is how long the tag had been silent when the alert fired."""
    rs = rules(
        "rules:\n"
        "  - {id: s, tag: a/x, stale: 2s, severity: medium, message: '焊接电流 {duration} 无更新'}\n"
        "  - {id: f, tag: a/x, stale: 2s, for: 1s, severity: medium, message: 'silent {duration}'}\n"
    )
    events = run(rs, [Sample(0, "a/x", 1.0)], end=4 * S)
    by = {e.rule: e.message for e in events}
    assert by == {"s": "焊接电流 2s 无更新", "f": "silent 3s"}
