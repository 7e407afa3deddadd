"""NodeId strings: what ``check`` accepts, what it refuses (FILE:LINE:COL), and the round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import ua

from plantpulse.cli import main
from plantpulse.collectors.opcua import node_id
from plantpulse.collectors.opcua_nodeid import NodeRef, parse_node_id

GUID = "09087e75-8e5e-499b-954f-f2a9603db28a"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("ns=2;s=line1/weld01/current", NodeRef("s", "line1/weld01/current", 2)),
        ("i=2258", NodeRef("i", 2258)),
        ("ns=3;i=1001", NodeRef("i", 1001, 3)),
        ("nsu=urn:plantpulse:sim;s=焊机 1;电流", NodeRef("s", "焊机 1;电流", uri="urn:plantpulse:sim")),
        ("nsu=http://x.org/UA/a%3Bb/;i=5", NodeRef("i", 5, uri="http://x.org/UA/a;b/")),
        (f"ns=1;g={GUID}", NodeRef("g", GUID, 1)),
        ("ns=1;b=AQID", NodeRef("b", "AQID", 1)),
        (" ns=2 ; s=x ", NodeRef("s", "x", 2)),
    ],
)
def test_valid_node_ids(text: str, ref: NodeRef) -> None:
    assert parse_node_id(text) == ref
    assert parse_node_id(str(ref)) == ref  # formatting round-trips


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "cannot be empty"),
        ("line1/weld01/current", "write ns=<index>;s=<name>"),
        ("ns=2,s=x", "ns= must be followed by ;<kind>=<id>"),
        ("ns=x;s=y", "ns= takes a namespace index 0-65535"),
        ("ns=70000;i=1", "ns= takes a namespace index 0-65535"),
        ("nsu=;s=y", "nsu= needs a namespace URI"),
        ("ns=2;s=", "s= needs a name"),
        ("i=-1", "i= takes a number"),
        ("i=4294967296", "i= takes a number"),
        ("ns=1;g=not-a-guid", "g= takes a GUID"),
        ("ns=1;b=***", "b= takes base64"),
        ("srv=1;ns=2;i=5", "srv= (a node on another server) is not supported"),
        ("ns=2;nsu=urn:x;s=y", "after ns= comes i=, s=, g= or b="),
        ("NS=2;S=x", "write ns=<index>;s=<name>"),
    ],
)
def test_invalid_node_ids(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="node id") as info:
        parse_node_id(text)
    assert why in str(info.value)


def test_asyncua_reads_what_we_format() -> None:
    for text in ("ns=2;s=a;b=c", "i=85", "ns=4;g=09087e75-8e5e-499b-954f-f2a9603db28a", "ns=1;b=AQID"):
        assert node_id(parse_node_id(text)) == ua.NodeId.from_string(text)
    ref = parse_node_id("nsu=urn:x;s=line1/a").with_index(5)
    assert node_id(ref) == ua.NodeId("line1/a", 5, ua.NodeIdType.String)


def test_check_points_at_each_malformed_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        "sources:\n"
        "  - kind: opcua\n"
        "    name: plc\n"
        "    endpoint: opc.tcp://192.0.2.10:4840\n"
        "    tags:\n"
        "      - {name: line1/a, node: 'nsu=urn:plantpulse:simulator;s=line1/a'}\n"
        "      - {name: line1/b, node: 'ns=2,s=line1/b'}\n"
        "      - name: line1/c\n"
        "        node: 'line1/c'\n",
        encoding="utf-8",
    )
    assert main(["check", "-c", str(plant)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{plant}:7:25: sources.0.tags.1.node: invalid node id 'ns=2,s=line1/b': ns= must be followed by "
        ";<kind>=<id>; write ns=<index>;s=<name>, nsu=<namespace uri>;s=<name>, or i=, g=, b= instead of s=",
        f"{plant}:9:9: sources.0.tags.2.node: invalid node id 'line1/c': write ns=<index>;s=<name>, "
        "nsu=<namespace uri>;s=<name>, or i=, g=, b= instead of s=",
    ]
