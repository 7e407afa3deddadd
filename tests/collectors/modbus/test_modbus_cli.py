"""``plantpulse modbus plan`` and ``plantpulse modbus probe``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import plantpulse
from plantpulse.collectors import modbus_cli
from plantpulse.errors import ConfigError
from plantpulse.simulators.modbus import ModbusDeviceServer

SAMPLE = Path(plantpulse.__file__).parent / "collectors" / "samples" / "modbus.yaml"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="plantpulse")
    modbus_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_plan_prints_the_requests_of_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["modbus", "plan", "-c", str(SAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "press-line-tcp (tcp://192.0.2.20:502): 7 tags in 4 requests per poll (7 one per tag), every 500ms"
    )
    assert out[3].split() == [
        "1",
        "holding",
        "0-7",
        "8",
        "line2/press01/force,",
        "line2/press01/strokes,",
        "line2/press01/oil_temp,",
        "line2/press01/running",
    ]
    assert any(line.startswith("meters-rs485 (rtu:///dev/ttyUSB0@19200-8E1)") for line in out)


def test_plan_reports_problems_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(
        "sources:\n  - kind: modbus\n    name: m\n    tcp: {host: h}\n    tags:\n"
        "      - {name: a, address: 0, type: bit}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        run(["modbus", "plan", "-c", str(path)])
    (problem,) = err.value.problems
    assert (problem.line, problem.col) == (6, 9)
    assert problem.what == "type bit needs bit: 0-15, and bit: is only for type bit"


async def test_probe_reads_four_registers_and_decodes_every_order() -> None:
    layout = {1: {"holding": {10: 0x42F6, 11: 0xE979, 12: 0, 13: 0}}, 2: {"input": {0: 0x4120, 1: 0}}}
    async with ModbusDeviceServer(layout) as server:  # type: ignore[arg-type]
        read = modbus_cli.read_registers
        four = await read("127.0.0.1", server.port, 10, (4, 2), unit=1, table="holding", wait=1.0)
        two = await read("127.0.0.1", server.port, 0, (4, 2), unit=2, table="input", wait=1.0)  # 4 refused: 2
        refused = await read("127.0.0.1", server.port, 40, (4, 2), unit=1, table="holding", wait=1.0)
    assert four == [0x42F6, 0xE979, 0, 0]
    assert two == [0x4120, 0]
    assert refused == "exception 0x02 (illegal data address)"
    lines = modbus_cli.format_probe(10, four)
    assert lines[0] == "registers 10-13: 0x42F6 0xE979 0x0000 0x0000"
    assert lines[2].split()[:4] == ["ABCD", "1123477881", "1123477881", "123.456001"]
    assert len(lines[2].split()) == 6  # int64 and float64 with four registers
    assert len(modbus_cli.format_probe(0, two)[2].split()) == 4


def test_probe_of_nothing_listening_fails_with_exit_1(capsys: pytest.CaptureFixture[str], port: int) -> None:
    assert run(["modbus", "probe", f"127.0.0.1:{port}", "0", "--timeout", "1"]) == 1
    assert capsys.readouterr().err.strip() == f"tcp://127.0.0.1:{port} unit 1 holding 0: cannot connect"
