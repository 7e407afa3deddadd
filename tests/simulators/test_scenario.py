"""Scenarios are pure: the same (scenario, seed, tick) always gives the same value."""

from __future__ import annotations

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
    k = np.arange(0, 1200)
    cur = demo.evaluate("current", k)
    dev = np.abs(cur.value - demo.evaluate("current_sp", k).value)
    assert (dev[1, 80:180] > 8).all() and (dev[1, 180:] < 1).all()  # weld02 step +9 A, 8 s .. 18 s
    assert (cur.value[3, 400:450] == cur.value[3, 400]).all()  # weld04 flatline from 40 s
    assert not cur.updated[0, 550:590].any() and cur.updated[0, 590]  # weld01 dropout 55 s .. 59 s
    volt = demo.evaluate("voltage", k)
    assert (volt.status[1, 700:730] == sc.BAD_STATUS_CODES["BadSensorFailure"]).all()
    assert np.isnan(volt.value[1, 700:730]).all() and volt.status[1, 730] == 0
    assert (volt.value[2, 250:300] < 20).all()
    ws = demo.evaluate("wire_speed", k).value[2]
    assert ws[839] - ws[800] == pytest.approx(3.9, abs=0.05)
    sp = demo.evaluate("current_sp", k).value[3]
    assert sp[999] == 180 and sp[1000] == 200


def test_counters_and_loop(demo: sc.Scenario) -> None:
    total = demo.evaluate("parts_total", [0, 59, 60, 119, 120]).value[0]
    assert total.tolist() == [0, 0, 1, 1, 2]
    good = demo.evaluate("parts_good", np.arange(demo.n_ticks)).value
    assert (np.diff(good, axis=1) >= 0).all() and (
        good <= demo.evaluate("parts_total", np.arange(demo.n_ticks)).value
    ).all()
    again = demo.evaluate("current", [demo.n_ticks + 5]).value
    assert np.array_equal(again, demo.evaluate("current", [5]).value)


def test_truth_is_change_only(demo: sc.Scenario) -> None:
    truth = sc.truth_samples(demo, 1000 * S, ticks=1200)
    by_tag: dict[str, list[int]] = {}
    for s in truth:
        by_tag.setdefault(s.tag, []).append(s.ts)
    assert by_tag["line1/weld01/current_sp"] == [1000 * S]  # constant: its first value only
    w4 = by_tag["line1/weld04/current"]
    assert 1040 * S in w4 and not [t for t in w4 if 1040 * S < t < 1045 * S]
    w1 = by_tag["line1/weld01/current"]
    assert not [t for t in w1 if 1054.9 * S < t < 1059 * S]
    assert all(s.ts == sorted(x.ts for x in truth)[i] for i, s in enumerate(truth[:50]))
    bad = [s for s in truth if s.quality == Quality.BAD]
    assert bad and all(math.isnan(s.value) for s in bad)


def test_tag_names_and_source(demo: sc.Scenario) -> None:
    names = demo.tag_names()
    assert names[:2] == ["line1/weld01/current", "line1/weld01/current_sp"] and len(names) == 28
    src = sc.opcua_source(demo, "opc.tcp://127.0.0.1:4840/plantpulse", signals=("current",))
    assert [t.node for t in src.tags] == [f"ns=2;s=line1/weld0{i}/current" for i in range(1, 5)]


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
