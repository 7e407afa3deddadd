"""``plantpulse modbus plan`` and ``plantpulse modbus probe``."""

from __future__ import annotations

import argparse
import asyncio
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


async def test_read_registers_falls_back_to_fewer_when_refused() -> None:
    layout = {1: {"holding": {10: 0x42F6, 11: 0xE979, 12: 0, 13: 0}}, 2: {"input": {0: 0x4120, 1: 0}}}
    async with ModbusDeviceServer(layout) as server:  # type: ignore[arg-type]
        read = modbus_cli.read_registers
        four = await read("127.0.0.1", server.port, 10, (4, 2), unit=1, table="holding", wait=1.0)
        two = await read("127.0.0.1", server.port, 0, (4, 2), unit=2, table="input", wait=1.0)  # 4 refused: 2
        refused = await read("127.0.0.1", server.port, 40, (4, 2), unit=1, table="holding", wait=1.0)
    assert four == [0x42F6, 0xE979, 0, 0]
    assert two == [0x4120, 0]
    assert refused == "exception 0x02 (illegal data address)"


async def probe(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """The command in a worker thread (it runs its own event loop) against a server in this one."""
    code = await asyncio.to_thread(run, ["modbus", "probe", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def row(lines: list[str], first: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:1] == [first])


async def test_probe_reads_a_single_register_as_int16_and_uint16(capsys: pytest.CaptureFixture[str]) -> None:
    async with ModbusDeviceServer({1: {"holding": {7: 0xFF9C}}}) as server:  # only register 7 exists
        target = f"127.0.0.1:{server.port}"
        code, lines, err = await probe([target, "7", "--count", "1"], capsys)
        assert (code, err) == (0, "")
        assert lines[0] == f"unit 1 holding 7-7 (tcp://{target})"
        assert lines[1].split() == ["register", "hex", "int16", "uint16", "x0.1", "x0.01"]
        assert row(lines, "7") == ["7", "0xFF9C", "-100", "65436", "6543.6", "654.36"]
        # without --count: four and two are refused, one is read
        code, lines, err = await probe([target, "7"], capsys)
        assert (code, err, lines[0]) == (0, "", f"unit 1 holding 7-7 (tcp://{target})")


async def test_probe_shows_every_32_bit_decoding_in_all_word_orders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout = {3: {"input": {10: 0x42F6, 11: 0xE979, 12: 0xE979, 13: 0x42F6}}}
    async with ModbusDeviceServer(layout) as server:  # type: ignore[arg-type]
        target = f"127.0.0.1:{server.port}"
        code, lines, err = await probe([target, "10", "--unit", "3", "--table", "input"], capsys)
    assert (code, err) == (0, "")
    assert lines[0] == f"unit 3 input 10-13 (tcp://{target})"
    assert row(lines, "float32") == ["float32", "at", "ABCD", "CDAB", "BADC", "DCBA"]
    float32 = lines[lines.index(next(ln for ln in lines if ln.startswith("float32"))) :]
    assert row(float32, "10")[1] == "123.456"  # 0x42F6E979, ABCD
    assert row(float32, "12")[2] == "123.456"  # the same words swapped: CDAB
    int32 = lines[lines.index(next(ln for ln in lines if ln.startswith("int32"))) :]
    assert row(int32, "10")[1] == "1123477881"
    assert any(line.startswith("uint32 at") for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["0", "--count", "0"], "--count is 1-125 (the most one request reads)"),
        (["0", "--count", "126"], "--count is 1-125 (the most one request reads)"),
        (["65535", "--count", "2"], "--address and --count must stay within registers 0-65535"),
        (["0", "--unit", "300"], "--unit is 0-247"),
    ],
)
def test_probe_refuses_an_impossible_block_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], port: int
) -> None:
    assert run(["modbus", "probe", f"127.0.0.1:{port}", *argv]) == 1
    assert capsys.readouterr().err == f"plantpulse modbus probe: {message}\n"


def test_probe_of_nothing_listening_fails_with_exit_1(capsys: pytest.CaptureFixture[str], port: int) -> None:
    assert run(["modbus", "probe", f"127.0.0.1:{port}", "0", "--timeout", "1"]) == 1
    assert capsys.readouterr().err.strip() == f"tcp://127.0.0.1:{port} unit 1 holding 0: cannot connect"
