"""Per-welder protocols in a scenario: validation, parts of a line, and each protocol's truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from plantpulse.collectors.modbus_plan import decode, encode
from plantpulse.errors import ConfigError
from plantpulse.samples import Quality
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.modbus import REGISTER_MAP

S = 1_000_000_000
LINE = """\
welders: 4
tick: 100ms
duration: 20s
faults:
  - {welder: weld02, kind: flatline, signal: current, start: 5s, duration: 3s}
  - {welder: weld03, kind: dropout, start: 5s, duration: 1s}
  - {welder: weld02, kind: bad_quality, signal: voltage, start: 10s, duration: 1s}
"""


def load(tmp_path: Path, text: str) -> sc.Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return sc.load_scenario(path)


def test_every_problem_is_reported_at_its_item(tmp_path: Path) -> None:
    text = LINE + "protocols:\n  modbus: [weld02, weld09]\n  mqtt: [weld01..weld02, weld01..weld7]\n"
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    path = tmp_path / "s.yaml"
    assert [str(p) for p in e.value.problems] == [
        f"{path}:9:20: protocols.modbus.1: unknown welder 'weld09' (this line has weld01..weld04)",
        f"{path}:10:10: protocols.mqtt.0: weld02 is already on modbus",
        f"{path}:10:26: protocols.mqtt.1: unknown welder 'weld01..weld7' (this line has weld01..weld04)",
    ]


def test_unlisted_welders_stay_on_opcua_and_ranges_expand(tmp_path: Path) -> None:
    s = load(tmp_path, LINE + "protocols: {modbus: [weld02..weld03]}\nmqtt_format: sparkplug\n")
    assert [s.protocol_of(w) for w in s.welder_names()] == ["opcua", "modbus", "modbus", "opcua"]
    assert s.welders_on("mqtt") == [] and s.mqtt_format == "sparkplug"


def test_a_part_serves_the_same_values_as_the_line(tmp_path: Path) -> None:
    s = load(tmp_path, LINE)
    part = s.part(["weld03", "weld02"])
    assert part.welders == 2 and part.line_size == 4
    assert part.welder_names() == ["weld02", "weld03"]
    assert part.tag_names()[0] == "line1/weld02/current"
    ks = np.arange(0, 200)
    for signal in sc.SIGNALS:
        whole, sub = s.evaluate(signal, ks), part.evaluate(signal, ks)
        assert np.array_equal(sub.value[:, :], whole.value[1:3], equal_nan=True), signal
        assert np.array_equal(sub.updated, whole.updated[1:3]) and np.array_equal(
            sub.status, whole.status[1:3]
        )


def test_modbus_truth_polls_every_tick_through_the_register_encoding(tmp_path: Path) -> None:
    s = load(tmp_path, LINE + "protocols: {modbus: [weld02, weld03]}\n")
    truth = sc.truth_samples(s, 1000 * S)
    cur2 = [x for x in truth if x.tag == "line1/weld02/current"]
    assert len(cur2) == s.n_ticks  # a flatline is read again at every poll: no stale data
    volt2 = [x for x in truth if x.tag == "line1/weld02/voltage"]
    # bad voltage fails the holding block: current is bad too, running (a coil) is not
    assert {x.quality for x in cur2[100:110]} == {Quality.BAD}
    assert all(x.quality == Quality.GOOD for x in truth if x.tag == "line1/weld02/running")
    # a dropout times out: every signal of weld03 bad
    assert {
        x.quality for x in truth if x.tag.startswith("line1/weld03/") and 5 * S <= x.ts - 1000 * S < 6 * S
    } == {Quality.BAD}
    slots = {slot.signal: slot for slot in REGISTER_MAP}
    for x in volt2[:20]:
        tag = slots["voltage"].tag("x", 1)
        raw = s.evaluate("voltage", [(x.ts - 1000 * S) // s.tick]).value[1, 0]
        assert x.value == decode(encode(float(raw), tag), tag)


def test_sparkplug_truth_has_deaths_and_births(tmp_path: Path) -> None:
    s = load(tmp_path, LINE + "protocols: {mqtt: [weld03]}\nmqtt_format: sparkplug\n")
    sp = [x for x in sc.truth_samples(s, 0) if x.tag == "line1/weld03/current_sp"]
    # constant: first value, a death (bad) where the dropout starts, the birth where it ends
    assert [(x.ts, x.quality) for x in sp] == [(0, Quality.GOOD), (5 * S, Quality.BAD), (6 * S, Quality.GOOD)]
    assert math.isnan(sp[1].value)
    json_line = load(tmp_path, LINE + "protocols: {mqtt: [weld03]}\n")
    assert [x.ts for x in sc.truth_samples(json_line, 0) if x.tag == "line1/weld03/current_sp"] == [0]
