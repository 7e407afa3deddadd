"""``discover opcua`` against a real asyncua server: types, units, ranges, nsu= ids, depth, root."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from asyncua import Server, ua
from asyncua.ua.attribute_ids import AttributeIds
from collector_helpers import RecordingSink
from discover_helpers import check, run_cli

from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.config import OpcUaSource

pytestmark = pytest.mark.slow


@pytest.fixture
async def press(port: int) -> AsyncIterator[str]:
    """A press controller: its namespace is the third one registered (ns=3), names in Chinese,
    an AnalogItem with unit and range, and variables that are not numbers."""
    server = Server()
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{port}/acme"
    server.set_endpoint(endpoint)
    await server.register_namespace("urn:acme:first")
    ns = await server.register_namespace("urn:acme:press")
    press = await server.nodes.objects.add_object(ua.NodeId("press1", ns), ua.QualifiedName("Press 1", ns))

    async def var(ident: str | int, name: str, value: object, kind: ua.VariantType) -> object:
        return await press.add_variable(
            ua.NodeId(ident, ns), ua.QualifiedName(name, ns), ua.Variant(value, kind)
        )

    pressure = await var("press1.pressure", "压力", 123.5, ua.VariantType.Double)
    await pressure.add_property(ns, "EURange", ua.Range(0.0, 250.0))
    unit = ua.EUInformation(DisplayName=ua.LocalizedText("bar"), Description=ua.LocalizedText("bar"))
    await pressure.add_property(ns, "EngineeringUnits", unit)
    raw = ua.Variant(1235, ua.VariantType.Int32)  # a variable's own component: one level deeper
    await pressure.add_variable(ua.NodeId("press1.pressure.raw", ns), ua.QualifiedName("raw", ns), raw)
    await pressure.write_attribute(
        AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText("主缸压力")))
    )
    await var(1001, "cycles", 42, ua.VariantType.UInt32)
    await var("press1.running", "running", True, ua.VariantType.Boolean)
    await var("press1.model", "model", "PX-200", ua.VariantType.String)
    await var("press1.history", "history", [1, 2, 3], ua.VariantType.Int32)
    diag = await press.add_folder(ua.NodeId("press1.diag", ns), ua.QualifiedName("Diagnostics", ns))
    await diag.add_variable(
        ua.NodeId("press1.diag.errors", ns),
        ua.QualifiedName("errors", ns),
        ua.Variant(-3, ua.VariantType.Int16),
    )
    async with server:
        yield endpoint


async def test_browse_writes_nsu_ids_units_and_names_and_the_collector_reads_them(
    press: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = await run_cli(capsys, "discover", "opcua", press, "--source", "press")
    assert code == 0, err
    rows = [line.split() for line in err.splitlines()]
    assert [
        "Press_1/压力",
        "nsu=urn:acme:press;s=press1.pressure",
        "Double",
        "bar",
        "0..250",
        "123.5",
    ] in rows
    assert ["-", "nsu=urn:acme:press;s=press1.model", "String", "PX-200"] in rows
    assert ["-", "nsu=urn:acme:press;s=press1.history", "Int32", "array[3]"] in rows
    assert err.splitlines()[-1] == "7 variables, 5 tags (2 not numeric: left out)"
    [source] = yaml.safe_load(out)["sources"]
    assert source["tags"] == [
        {
            "name": "Press_1/压力",
            "node": "nsu=urn:acme:press;s=press1.pressure",
            "unit": "bar",
            "description": "主缸压力",
        },
        {"name": "Press_1/cycles", "node": "nsu=urn:acme:press;i=1001"},
        {"name": "Press_1/running", "node": "nsu=urn:acme:press;s=press1.running"},
        {"name": "Press_1/压力/raw", "node": "nsu=urn:acme:press;s=press1.pressure.raw"},
        {"name": "Press_1/Diagnostics/errors", "node": "nsu=urn:acme:press;s=press1.diag.errors"},
    ]
    (tmp_path / "plant.yaml").write_text(out, encoding="utf-8")
    assert check(capsys, tmp_path / "plant.yaml").endswith(": ok: 1 sources, 5 tags, 0 rules in 0 files\n")
    # and what was written is what the collector reads: every tag delivers its value
    sink = RecordingSink()
    task = asyncio.create_task(OpcUaCollector(OpcUaSource.model_validate(source)).run(sink))
    await sink.wait_for(lambda s: len({x.tag for x in s.samples}) == 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not sink.errors
    assert {s.tag: s.value for s in sink.samples} == {
        "Press_1/压力": 123.5,
        "Press_1/cycles": 42.0,
        "Press_1/running": 1.0,
        "Press_1/压力/raw": 1235.0,
        "Press_1/Diagnostics/errors": -3.0,
    }


async def test_depth_and_root(press: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await run_cli(capsys, "discover", "opcua", press, "--depth", "2")
    assert code == 0
    assert "Diagnostics" not in out and "raw" not in out and "Press_1/cycles" in out
    code, out, err = await run_cli(
        capsys, "discover", "opcua", press, "--root", "nsu=urn:acme:press;s=press1.diag"
    )
    assert code == 0, err
    assert [t["name"] for t in yaml.safe_load(out)["sources"][0]["tags"]] == ["Diagnostics/errors"]
    code, out, err = await run_cli(
        capsys, "discover", "opcua", press, "--root", "nsu=urn:nowhere;s=x", "--format", "table"
    )
    assert (code, out) == (1, "")
    assert err == (
        "discover opcua: --root: namespace 'urn:nowhere' is not on the server (it has: "
        "urn:freeopcua:python:server (ns=1), urn:acme:first (ns=2), urn:acme:press (ns=3))\n"
    )
    code, out, err = await run_cli(capsys, "discover", "opcua", press, "--format", "table")
    assert code == 0 and "sources:" not in out and out.splitlines()[0].split()[:2] == ["tag", "node"]
