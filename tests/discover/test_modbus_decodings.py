"""Every decoding side by side, picks, and the Modbus fragment (pure, the collector's codec)."""

from __future__ import annotations

import pytest

from plantpulse.collectors.modbus_config import ModbusTag
from plantpulse.collectors.modbus_plan import encode
from plantpulse.discover.fragment import render
from plantpulse.discover.modbus import (
    Pick,
    candidates,
    matches,
    parse_pick,
    picked_values,
    source_entry,
    table,
)
from plantpulse.simulators.modbus import REGISTER_MAP

VALUES = {
    "current": 180.25,
    "current_sp": 180.0,
    "voltage": 24.5,
    "wire_speed": 8.0,
    "parts_good": 70000,
    "parts_total": 71234,
}


def simulator_block() -> list[int]:
    """Holding 0-12 of one welder as the Modbus simulator lays it out (mixed orders, a scale)."""
    words = [0] * 13
    for slot in REGISTER_MAP:
        if slot.table == "holding":
            tag = slot.tag(slot.signal, 1)
            words[slot.address : slot.address + tag.count] = encode(VALUES[slot.signal], tag)
    return words


def test_each_of_the_simulators_encodings_is_among_the_candidates() -> None:
    found = {(c.address, c.type, c.order): c.value for c in candidates(0, simulator_block())}
    for slot in REGISTER_MAP:
        if slot.table != "holding":
            continue
        raw = found[(slot.address, slot.type, slot.byte_order if slot.type not in ("uint16",) else "ABCD")]
        assert raw * slot.scale == pytest.approx(VALUES[slot.signal], rel=1e-6), slot


def test_expect_ranks_the_right_decodings_first() -> None:
    words = simulator_block()
    [(value, best, scale), *_] = matches(candidates(0, words), 24.5)
    assert (best.address, best.type, best.order, scale, value) == (6, "float32", "BADC", 1.0, 24.5)
    [(_, best, scale), *_] = matches(candidates(0, words), 8.0)
    assert (best.address, best.type, scale) == (8, "uint16", 0.01)
    lines = table(0, words, expect=180.25)
    assert "180.25 = float64 ABCD at 0: --pick 0:float64:ABCD" in lines
    assert lines[0].split() == ["register", "hex", "int16", "uint16", "x0.1", "x0.01"]
    assert any(line.startswith("float32 at") for line in lines) and "·" in "\n".join(lines)
    assert not any(line.startswith("float64 at") for line in table(0, words[:3]))


@pytest.mark.parametrize(
    ("text", "pick"),
    [
        ("4:float32:CDAB", Pick(4, "float32", "CDAB")),
        ("8:uint16::0.01", Pick(8, "uint16", "ABCD", 0.01)),
        ("0:float64=line1/焊机01/电流", Pick(0, "float64", "ABCD", 1.0, "line1/焊机01/电流")),
        ("9:uint32:dcba:1e-3=a/b", Pick(9, "uint32", "DCBA", 0.001, "a/b")),
    ],
)
def test_picks(text: str, pick: Pick) -> None:
    assert parse_pick(text) == pick


@pytest.mark.parametrize("text", ["4", "x:float32", "4:float32:ABC", "4:float32:CDAB:x"])
def test_bad_picks_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"--pick .*(ADDRESS:TYPE|not a number)"):
        parse_pick(text)


def test_the_fragment_decodes_what_was_picked() -> None:
    picks = [
        parse_pick("0:float64=line1/weld02/current"),
        parse_pick("8:uint16::0.01"),
        parse_pick("6:float32:BADC"),
    ]
    entry = source_entry(picks, name="modbus-10-0-0-5", host="10.0.0.5", port=502, unit=3, table_name="input")
    assert entry["tags"] == [
        {"name": "line1/weld02/current", "address": 0, "type": "float64", "table": "input"},
        {
            "name": "modbus-10-0-0-5/unit3/input_8",
            "address": 8,
            "type": "uint16",
            "table": "input",
            "scale": 0.01,
        },
        {
            "name": "modbus-10-0-0-5/unit3/input_6",
            "address": 6,
            "type": "float32",
            "table": "input",
            "byte_order": "BADC",
        },
    ]
    render([entry])
    ModbusTag.model_validate(entry["tags"][1])
    assert picked_values(picks, 0, simulator_block()) == [
        "0:float64:ABCD = 180.25",
        "8:uint16:ABCD x0.01 = 8",
        "6:float32:BADC = 24.5",
    ]
    assert picked_values([parse_pick("20:int16")], 0, simulator_block()) == [
        "20:int16:ABCD = (outside the registers read)"
    ]


def test_a_pick_the_collector_cannot_decode_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^--pick 3:bool:ABCD: type bool reads coils"):
        source_entry([parse_pick("3:bool")], name="m", host="h", port=502, unit=1, table_name="holding")
