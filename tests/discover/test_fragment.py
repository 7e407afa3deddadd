"""Suggested names and the printed plant.yaml (pure)."""

from __future__ import annotations

import pytest

from plantpulse.discover.fragment import render, secret_reference, segment, source_name, tag_name, unique


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("current", "current"),
        ("Line 1", "Line_1"),
        ("焊机 01", "焊机_01"),
        ("a/b", "a_b"),
        ("temp[0]*", "temp_0"),
        ("{x}", "x"),
        ("  ", "_"),
        ("a\tb\nc", "a_b_c"),
    ],
)
def test_segments_keep_letters_and_lose_what_tags_cannot_hold(raw: str, want: str) -> None:
    assert segment(raw) == want


def test_names_paths_and_duplicates() -> None:
    assert tag_name(["焊装车间", "Weld 01", "电流"]) == "焊装车间/Weld_01/电流"
    assert unique(["a", "b", "a", "a", "a_2"]) == ["a", "b", "a_3", "a_4", "a_2"]
    assert source_name("opcua", "192.168.0.10") == "opcua-192-168-0-10"
    assert source_name("mqtt", "") == "mqtt-device"


def test_passwords_become_references() -> None:
    assert secret_reference(None, "OPCUA_PASSWORD") == (None, "${OPCUA_PASSWORD}")
    assert secret_reference("s3cret", "OPCUA_PASSWORD") == (None, "${OPCUA_PASSWORD}")
    assert secret_reference("$PLC_PW", "OPCUA_PASSWORD") == ("PLC_PW", "${PLC_PW}")
    assert secret_reference("${PLC_PW}", "OPCUA_PASSWORD") == ("PLC_PW", "${PLC_PW}")


def test_render_is_a_whole_plant_yaml_or_a_bug() -> None:
    entry = {
        "kind": "opcua",
        "name": "plc",
        "endpoint": "opc.tcp://h:4840",
        "password": "${OPCUA_PASSWORD}",
        "username": "u",
        "tags": [{"name": "车间/电流", "node": "nsu=urn:a;s=x: y"}],
    }
    text = render([entry], ["first", "", "last"])
    assert text.startswith("# first\n#\n# last\nsources:\n")
    assert "车间/电流" in text and "${OPCUA_PASSWORD}" in text
    with pytest.raises(AssertionError, match=r"invalid plant\.yaml"):
        render([{**entry, "tags": [{"name": "a", "node": "ns=2,s=x"}]}])
