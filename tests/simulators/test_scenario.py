"""Scenarios are pure: the same (scenario, seed, tick) always gives the same value."""

from __future__ import annotations

import itertools
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from plantpulse.errors import ConfigError
from plantpulse.samples import Quality
from plantpulse.simulators import scenario as sc

S = 1_000_000_000


@pytest.fixture(scope="module")
def demo() -> sc.Scenario:
    with resources.as_file(resources.files("plantpulse") / "demo" / "weld-line.yaml") as path:
        return sc.load_scenario(path)


def test_values_are_a_pure_function_of_tick(demo: sc.Scenario) -> None:
    ks = np.arange(0, 3000)
    whole = demo.evaluate("current", ks).value
    pieces = np.concatenate([demo.evaluate("current", [k]).value for k in (2999, 17, 0)], axis=1)
    assert np.array_equal(pieces, whole[:, [2999, 17, 0]])
    assert np.array_equal(whole, demo.evaluate("current", ks).value)
    other_seed = demo.model_copy(update={"seed": demo.seed + 1})
    assert not np.array_equal(whole, other_seed.evaluate("current", ks).value)
    # uniform noise never leaves its band, so the thresholds of the rules are exact
    normal = np.abs(whole[2] - 180.0)
    assert normal.max() <= 0.8


def test_faults(demo: sc.Scenario) -> None:
    k = np.arange(0, 2100)
    cur = demo.evaluate("current", k)
    dev = np.abs(cur.value - demo.evaluate("current_sp", k).value)
    assert (dev[1, 300:400] > 8).all() and (dev[1, 400:] < 1).all()  # weld02 step +9 A, 30 s .. 40 s
    assert (cur.value[3, 900:950] == cur.value[3, 900]).all()  # weld04 flatline from 90 s
    assert not cur.updated[0, 1200:1240].any() and cur.updated[0, 1240]  # weld01 dropout 120 s .. 124 s
    volt = demo.evaluate("voltage", k)
    assert (volt.status[1, 1500:1530] == sc.BAD_STATUS_CODES["BadSensorFailure"]).all()
    assert np.isnan(volt.value[1, 1500:1530]).all() and volt.status[1, 1530] == 0
    assert (volt.value[2, 600:650] < 20).all()
    ws = demo.evaluate("wire_speed", k).value[2]
    assert ws[1839] - ws[1800] == pytest.approx(3.9, abs=0.05)
    sp = demo.evaluate("current_sp", k).value[3]
    assert sp[1999] == 180 and sp[2000] == 200


def test_counters_and_loop(demo: sc.Scenario) -> None:
    total = demo.evaluate("parts_total", [0, 59, 60, 119, 120]).value[0]
    assert total.tolist() == [0, 0, 1, 1, 2]
    good = demo.evaluate("parts_good", np.arange(6000)).value
    assert (np.diff(good, axis=1) >= 0).all() and (
        good <= demo.evaluate("parts_total", np.arange(6000)).value
    ).all()
    again = demo.evaluate("current", [demo.n_ticks + 5]).value
    assert np.array_equal(again, demo.evaluate("current", [5]).value)


def test_truth_is_change_only(demo: sc.Scenario) -> None:
    truth = sc.truth_samples(demo, 1000 * S, ticks=1600)
    by_tag: dict[str, list[int]] = {}
    for s in truth:
        by_tag.setdefault(s.tag, []).append(s.ts)
    assert by_tag["line1/weld01/current_sp"] == [1000 * S]  # constant: its first value only
    w4 = by_tag["line1/weld04/current"]
    assert 1090 * S in w4 and not [t for t in w4 if 1090 * S < t < 1095 * S]
    w1 = by_tag["line1/weld01/current"]
    assert not [t for t in w1 if 1119.9 * S < t < 1124 * S]
    assert all(s.ts == sorted(x.ts for x in truth)[i] for i, s in enumerate(truth[:50]))
    bad = [s for s in truth if s.quality == Quality.BAD]
    assert bad and all(math.isnan(s.value) for s in bad)


def test_tag_names_and_source(demo: sc.Scenario) -> None:
    names = demo.tag_names()
    assert names[:2] == ["line1/weld01/current", "line1/weld01/current_sp"] and len(names) == 28
    src = sc.opcua_source(demo, "opc.tcp://127.0.0.1:4840/plantpulse", signals=("current",))
    assert [t.node for t in src.tags] == [f"ns=2;s=line1/weld0{i}/current" for i in range(1, 5)]


def test_expected_alerts_follow_from_the_truth(demo: sc.Scenario) -> None:
    """Checks the alerts the demo file promises against its own truth, rule by rule, with the
    SPEC semantics written out for these simple cases (the rules engine checks them fully)."""
    truth = sc.truth_samples(demo, 0, ticks=2100)
    series: dict[str, list[tuple[int, float]]] = {}
    for s in truth:
        series.setdefault(s.tag, []).append((s.ts, s.value))
    by_key = {(a.rule, a.tag): a for a in demo.expected_alerts}
    # stale: raised = last sample + 2 s, cleared at the next sample
    for tag in ("line1/weld04/current", "line1/weld01/current"):
        ts = [t for t, _ in series[tag]]
        gaps = [(a, b) for a, b in itertools.pairwise(ts) if b - a > 2 * S]
        assert [(a + 2 * S, b) for a, b in gaps] == [
            (by_key["weld-current-stale", tag].raised_at, by_key["weld-current-stale", tag].cleared_at)
        ]
    # voltage outside [20, 28] for 2 s
    v = [(t, x) for t, x in series["line1/weld03/voltage"] if not 20 <= x <= 28]
    alert = by_key["weld-voltage-band", "line1/weld03/voltage"]
    assert v[0][0] + 2 * S == alert.raised_at and v[-1][0] + demo.tick == alert.cleared_at


def test_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "duration: 1m\nwelders: 2\nfaults:\n"
        "  - {welder: weld07, kind: step, start: 1s, duration: 1s}\nnoise: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        sc.load_scenario(path)
    text = str(info.value)
    assert f"{path}:5:1: unknown key 'noise'" in text
    assert "needs a signal" in text
