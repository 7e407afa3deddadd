"""Golden cases as data: cases/<name>/{config.yaml, registers.yaml, expected.csv}.

Every case runs through the real collector against a real pymodbus server on a free loopback
port serving registers.yaml; every type and byte order has a case (register contents computed
with ``struct`` alone, so they do not trust the decoder they check).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modbus_helpers import CASES, load_expected, load_registers, same

from plantpulse.collectors.modbus import ModbusCollector
from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.samples import Quality
from plantpulse.simulators.modbus import ModbusDeviceServer

CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "config.yaml").exists())
TYPES = ("bool", "bit", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "string")


def test_every_type_and_byte_order_has_a_golden_case() -> None:
    seen: set[tuple[str, str]] = set()
    for case in CASE_DIRS:
        for tag in yaml.safe_load((case / "config.yaml").read_text(encoding="utf-8"))["tags"]:
            seen.add((tag.get("type", "?"), tag.get("byte_order", "ABCD")))
    for t in ("int16", "uint16", "int32", "uint32", "int64", "float32", "float64"):
        assert {(t, o) for o in ("ABCD", "CDAB", "BADC", "DCBA")} <= seen, t
    assert {("string", "ABCD"), ("string", "BADC"), ("bit", "ABCD")} <= seen
    assert {t for t, _ in seen} >= set(TYPES) - {"bool"}  # bool is the coil default, not spelt


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
async def test_golden_case(case: Path) -> None:
    config = yaml.safe_load((case / "config.yaml").read_text(encoding="utf-8"))
    expected = load_expected(case / "expected.csv")
    async with ModbusDeviceServer(load_registers(case / "registers.yaml")) as server:
        source = ModbusSource.model_validate({**config, "tcp": {"host": "127.0.0.1", "port": server.port}})
        collector = ModbusCollector(source)
        try:
            samples = await collector.read()
        finally:
            await collector.close()
    got = {s.tag: s for s in samples}
    assert set(got) == set(expected)
    for tag, (value, quality) in expected.items():
        assert same(got[tag].value, value), (tag, got[tag].value, value)
        assert got[tag].quality == Quality.parse(quality), tag
