"""The Modbus config schema: what it accepts, what it refuses (before any I/O), and the sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import plantpulse
from plantpulse import yamlsrc
from plantpulse.collectors.modbus_config import ModbusSource, ModbusTag
from plantpulse.collectors.modbus_plan import plan
from plantpulse.errors import ConfigError

SAMPLE = Path(plantpulse.__file__).parent / "collectors" / "samples" / "modbus.yaml"


def tag(**kw: Any) -> ModbusTag:
    return ModbusTag.model_validate({"name": "t", "address": 0, **kw})


def test_the_shipped_sample_validates_and_plans() -> None:
    doc = yamlsrc.load(SAMPLE)
    sources = [yamlsrc.validate(ModbusSource, yamlsrc.Document(doc.file, s)) for s in doc.data["sources"]]
    assert [s.address for s in sources] == ["tcp://192.0.2.20:502", "rtu:///dev/ttyUSB0@19200-8E1"]
    assert [r.describe() for r in plan(sources[0])] == [
        "unit 1 discrete_input 12-12 (1 bits)",
        "unit 1 holding 0-7 (8 registers)",
        "unit 2 holding 20-23 (4 registers)",
        "unit 2 input 100-103 (4 registers)",
    ]


def test_defaults() -> None:
    assert tag().type == "uint16"
    assert tag(table="coil").type == "bool"
    src = ModbusSource.model_validate(
        {"kind": "modbus", "name": "s", "tcp": {"host": "h"}, "tags": [{"name": "a", "address": 0}]}
    )
    assert (src.tcp and src.tcp.port, src.unit_id, src.interval, src.max_registers) == (
        502,
        1,
        1_000_000_000,
        125,
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"table": "coil", "type": "int16"}, "type must be bool"),
        ({"type": "bool"}, "type bool reads coils"),
        ({"type": "bit"}, "type bit needs bit"),
        ({"type": "uint16", "bit": 3}, "type bit needs bit"),
        ({"type": "bit", "bit": 16}, "less than or equal to 15"),
        ({"type": "string"}, "type string needs length"),
        ({"type": "string", "length": 251}, "less than or equal to 250"),
        ({"type": "int16", "length": 4}, "length: is only for type string"),
        ({"type": "string", "length": 4, "byte_order": "CDAB"}, "ABCD .* or BADC"),
        ({"type": "float64", "address": 65533}, "runs past 65535"),
        ({"address": 65536}, "less than or equal to 65535"),
        ({"address": -1}, "greater than or equal to 0"),
        ({"type": "float16"}, "Input should be"),
        ({"byte_order": "ABDC"}, "Input should be"),
        ({"unit_id": 248}, "less than or equal to 247"),
        ({"scale": 0}, "scale must not be 0"),
        ({"table": "coil", "byte_order": "DCBA"}, "byte_order does not apply"),
        ({"adress": 3}, "Extra inputs"),
    ],
)
def test_bad_tags_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        tag(**kw)


def test_float64_ending_at_65535_is_fine() -> None:
    assert tag(type="float64", address=65532).count == 4


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "exactly one transport"),
        ({"tcp": {"host": "h"}, "rtu": {"device": "/dev/ttyS0"}}, "exactly one transport"),
        ({"tcp": {"host": "h"}, "max_registers": 126}, "less than or equal to 125"),
        ({"tcp": {"host": "h"}, "request_timeout": "6s"}, "must not exceed timeout"),
        ({"tcp": {"host": "h", "port": 0}}, "greater than or equal to 1"),
        ({"rtu": {"device": "/dev/ttyS0", "parity": "X"}}, "Input should be"),
        (
            {
                "tcp": {"host": "h"},
                "max_registers": 2,
                "tags": [{"name": "f", "address": 0, "type": "float64"}],
            },
            "needs 4 registers",
        ),
        ({"tcp": {"host": "h"}, "tags": [{"name": "a", "address": 0}, {"name": "a", "address": 1}]}, "twice"),
        ({"tcp": {"host": "h"}, "tags": []}, "at least 1"),
    ],
)
def test_bad_sources_are_refused(kw: dict[str, Any], message: str) -> None:
    data = {"kind": "modbus", "name": "s", "tags": [{"name": "a", "address": 0}], **kw}
    with pytest.raises(ValidationError, match=message):
        ModbusSource.model_validate(data)


def test_problems_point_at_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "src.yaml"
    path.write_text(
        "kind: modbus\nname: s\ntcp: {host: h}\ntags:\n  - {name: a, address: 0}\n"
        "  - name: b\n    table: coil\n    address: 3\n    type: float32\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        yamlsrc.validate(ModbusSource, yamlsrc.load(path))
    (problem,) = err.value.problems
    assert (problem.line, problem.col) == (6, 5)
    assert "type must be bool" in problem.what
