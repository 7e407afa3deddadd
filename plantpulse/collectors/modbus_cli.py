"""``plantpulse modbus plan | probe``: see the requests a config makes, and guess a byte order.

``plan -c plant.yaml`` validates the Modbus sources of a config (problems as FILE:LINE:COL,
exit 1) and prints the requests of one poll per source. ``probe HOST[:PORT] ADDRESS`` reads
four registers (two when the device refuses four) and prints them decoded in every byte order,
the quickest way to find which one makes a known value come out right.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plantpulse import yamlsrc
from plantpulse.collectors.modbus_config import BIT_TABLES, ModbusSource, ModbusTag
from plantpulse.collectors.modbus_plan import decode, plan
from plantpulse.errors import ConfigError, Problem
from plantpulse.timefmt import format_duration

__all__ = ["load_modbus_sources", "parse_target", "read_registers", "register"]

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``modbus plan`` and ``modbus probe`` to ``plantpulse``."""
    p = sub.add_parser("modbus", help="Modbus tools: request plan, register probe")
    msub = p.add_subparsers(dest="modbus_command", metavar="COMMAND", required=True)
    pp = msub.add_parser("plan", help="print the requests each Modbus source makes per poll")
    pp.add_argument("-c", "--config", required=True, help="plant.yaml")
    pp.set_defaults(func=_plan)
    pr = msub.add_parser("probe", help="read registers and print them decoded in all four byte orders")
    pr.add_argument(
        "target", metavar="HOST[:PORT]", help="Modbus TCP device or gateway (port 502 by default)"
    )
    pr.add_argument("address", type=int, help="0-based register address (holding 0 is 40001)")
    pr.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    pr.add_argument("--table", choices=["holding", "input"], default="holding")
    pr.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    pr.set_defaults(func=_probe)


# -- plan ---------------------------------------------------------------------------------------


def load_modbus_sources(path: str | Path) -> list[ModbusSource]:
    """The ``kind: modbus`` entries of a plant.yaml, validated; ConfigError lists every problem."""
    doc = yamlsrc.load(path, interpolate_env=True)
    data = doc.data if isinstance(doc.data, dict) else {}
    entries = data.get("sources") or []
    out: list[ModbusSource] = []
    problems: list[Problem] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not (isinstance(entry, dict) and entry.get("kind") == "modbus"):
            continue
        try:
            out.append(ModbusSource.model_validate(entry))
        except ValidationError as e:
            problems.extend(yamlsrc.problems_from(e, doc, prefix=("sources", i)))
    if problems:
        raise ConfigError(problems)
    return out


def format_plan(source: ModbusSource) -> list[str]:
    requests = plan(source)
    single = len(plan(source, merge=False))
    lines = [
        f"{source.name} ({source.address}): {len(source.tags)} tags in {len(requests)} requests per poll "
        f"({single} one per tag), every {format_duration(source.interval)}",
        f"  {'unit':>4}  {'table':<14}  {'addresses':<11}  {'count':>5}  tags",
    ]
    for r in requests:
        span = f"{r.address}-{r.end - 1}"
        lines.append(
            f"  {r.unit:>4}  {r.table:<14}  {span:<11}  {r.count:>5}  {', '.join(t.name for t in r.tags)}"
        )
    return lines


def _plan(args: argparse.Namespace) -> int:
    sources = load_modbus_sources(args.config)
    if not sources:
        print(f"{args.config}: no Modbus sources", file=sys.stderr)
        return 0
    for i, src in enumerate(sources):
        if i:
            print()
        print("\n".join(format_plan(src)))
    return 0


# -- probe --------------------------------------------------------------------------------------


def format_probe(address: int, words: list[int]) -> list[str]:
    """The registers in hex, then int32/uint32/float32 (and int64/float64 with four) per order."""
    end = address + len(words) - 1
    lines = [f"registers {address}-{end}: " + " ".join(f"0x{w:04X}" for w in words)]
    types = ["int32", "uint32", "float32"] + (["int64", "float64"] if len(words) >= 4 else [])
    lines.append("order  " + "  ".join(f"{t:>22}" for t in types))
    for order in ORDERS:
        cells = []
        for t in types:
            tag = ModbusTag.model_validate(
                {"name": "probe", "address": address, "type": t, "byte_order": order}
            )
            v = decode(words[: tag.count], tag)
            cells.append(f"{v:>22.0f}" if "int" in t else f"{v:>22.9g}")
        lines.append(f"{order:<5}  " + "  ".join(cells))
    return lines


def _probe(args: argparse.Namespace) -> int:
    try:
        host, port_n = parse_target(args.target)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    result = asyncio.run(
        read_registers(
            host, port_n, args.address, (4, 2), unit=args.unit, table=args.table, wait=args.timeout
        )
    )
    if isinstance(result, str):
        print(
            f"tcp://{host}:{port_n} unit {args.unit} {args.table} {args.address}: {result}", file=sys.stderr
        )
        return 1
    print("\n".join(format_probe(args.address, result)))
    return 0


def parse_target(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (port 502 by default) -> (host, port); ValueError naming the problem."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "502")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"invalid HOST[:PORT] {text!r}")
    return host, int(port)


async def read_registers(
    host: str, port: int, address: int, counts: Sequence[int], *, unit: int, table: str, wait: float
) -> list[int] | str:
    """``counts[0]`` registers from ``address``, else the next count when the device refuses
    (probe: four, then two); an error text when nothing can be read."""
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    from plantpulse.collectors.modbus import EXCEPTION_CODES

    assert table not in BIT_TABLES
    client = AsyncModbusTcpClient(host, port=port, timeout=wait, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            return "cannot connect"
        why = ""
        for count in counts:
            if address + count > 65536:
                continue
            read = client.read_holding_registers if table == "holding" else client.read_input_registers
            try:
                response = await read(address, count=count, device_id=unit)
            except ModbusException as e:
                return str(e).removeprefix("Modbus Error: ").strip() or type(e).__name__
            if not response.isError():
                return list(response.registers)
            code = int(response.exception_code)
            why = f"exception {code:#04x} ({EXCEPTION_CODES.get(code, 'unknown')})"
        return why
    finally:
        client.close()
