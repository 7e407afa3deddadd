"""``plantpulse modbus plan | probe``: see the requests a config makes, and guess a decoding.

``plan -c plant.yaml`` validates the Modbus sources of a config (problems as FILE:LINE:COL,
exit 1) and prints the requests of one poll per source. ``probe HOST[:PORT] ADDRESS`` reads
``--count`` registers (by default four, else two, else one, as far as the device allows) and
prints every register as int16/uint16 (and x0.1, x0.01) and every pair as int32/uint32/float32
in the four word orders: the table of ``discover modbus`` (``plantpulse.discover.modbus``),
the quickest way to find which decoding makes a known value come out right.
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
from plantpulse.collectors.modbus_config import BIT_TABLES, ModbusSource
from plantpulse.collectors.modbus_plan import plan
from plantpulse.errors import ConfigError, Problem
from plantpulse.timefmt import format_duration

__all__ = ["block_problem", "load_modbus_sources", "parse_target", "read_registers", "register"]

PROBE_COUNTS = (4, 2, 1)
"""What ``probe`` reads without ``--count``: the first count the device answers."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``modbus plan`` and ``modbus probe`` to ``plantpulse``."""
    p = sub.add_parser("modbus", help="Modbus tools: request plan, register probe")
    msub = p.add_subparsers(dest="modbus_command", metavar="COMMAND", required=True)
    pp = msub.add_parser("plan", help="print the requests each Modbus source makes per poll")
    pp.add_argument("-c", "--config", required=True, help="plant.yaml")
    pp.set_defaults(func=_plan)
    pr = msub.add_parser(
        "probe", help="read registers and print them as int16/uint16 and every 32-bit decoding"
    )
    pr.add_argument(
        "target", metavar="HOST[:PORT]", help="Modbus TCP device or gateway (port 502 by default)"
    )
    pr.add_argument("address", type=int, help="0-based register address (holding 0 is 40001)")
    pr.add_argument(
        "--count", type=int, default=None, help="registers to read, 1-125 (default: 4, else 2, else 1)"
    )
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


def _probe(args: argparse.Namespace) -> int:
    from plantpulse.discover.modbus import table

    try:
        host, port_n = parse_target(args.target)
    except ValueError as e:
        print(f"plantpulse modbus probe: {e}", file=sys.stderr)
        return 1
    counts = PROBE_COUNTS if args.count is None else (args.count,)
    if problem := block_problem(args.address, counts[-1] if args.count is None else args.count, args.unit):
        print(f"plantpulse modbus probe: {problem}", file=sys.stderr)
        return 1
    result = asyncio.run(
        read_registers(
            host, port_n, args.address, counts, unit=args.unit, table=args.table, wait=args.timeout
        )
    )
    if isinstance(result, str):
        print(
            f"tcp://{host}:{port_n} unit {args.unit} {args.table} {args.address}: {result}", file=sys.stderr
        )
        return 1
    last = args.address + len(result) - 1
    print(f"unit {args.unit} {args.table} {args.address}-{last} (tcp://{host}:{port_n})")
    print("\n".join(table(args.address, result)))
    return 0


def block_problem(address: int, count: int, unit: int) -> str | None:
    """Why one read of ``count`` registers from ``address`` on ``unit`` is impossible, or None."""
    if not 1 <= count <= 125:
        return "--count is 1-125 (the most one request reads)"
    if not 0 <= address <= 65536 - count:
        return "--address and --count must stay within registers 0-65535"
    if not 0 <= unit <= 247:
        return "--unit is 0-247"
    return None


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
