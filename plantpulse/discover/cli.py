"""``plantpulse discover opcua | mqtt | modbus``: point it at a device, get a plant.yaml.

Output contract (docs/first-device.md): stdout carries only the plant.yaml (so ``> plant.yaml``
works), the human-readable table goes to stderr; ``--format table`` prints the table alone, on
stdout. The YAML is a whole minimal plant.yaml (a ``sources:`` list) that ``plantpulse check``
accepts as it is; its items paste under ``sources:`` of an existing file. Passwords are never
written: the file says ``${VAR}``. Every expected failure (unreachable, refused certificate,
bad login, bad option) is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from plantpulse.errors import SourceError, SourceUnavailable

__all__ = ["register"]

_DEFAULT_PASSWORD_VAR = {"opcua": "OPCUA_PASSWORD", "mqtt": "MQTT_PASSWORD"}


class _Refused(Exception):
    """A bad option or environment: printed as one line, exit 1."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``discover`` to ``plantpulse``."""
    p = sub.add_parser("discover", help="browse or listen to a device and print a plant.yaml for it")
    dsub = p.add_subparsers(dest="discover_command", metavar="PROTOCOL", required=True)

    o = dsub.add_parser("opcua", help="browse an OPC UA server: variables, types, units, ranges, values")
    o.add_argument("endpoint", metavar="opc.tcp://HOST:PORT[/PATH]")
    o.add_argument("--security-policy", choices=["None", "Basic256Sha256"], default="None")
    o.add_argument("--mode", choices=["Sign", "SignAndEncrypt"], default=None, help="default SignAndEncrypt")
    o.add_argument("--certificate", type=Path, help="client certificate (DER or PEM)")
    o.add_argument("--private-key", type=Path, help="client private key (PEM)")
    o.add_argument("--server-certificate", type=Path, help="pin: refuse a server presenting another one")
    o.add_argument("--username")
    o.add_argument(
        "--password", help="a password, or $VAR to read it from the environment (default $OPCUA_PASSWORD)"
    )
    o.add_argument("--root", help="node id to browse below (default: the Objects folder)")
    o.add_argument("--depth", type=int, default=10, help="levels below the root (default %(default)s)")
    o.add_argument(
        "--max-nodes", type=int, default=20_000, help="stop browsing after this many (default %(default)s)"
    )
    _common(o, timeout=5.0)
    o.set_defaults(func=_opcua)

    m = dsub.add_parser("mqtt", help="listen to a topic filter and propose subscriptions")
    m.add_argument("--host", required=True)
    m.add_argument("--port", type=int, default=None, help="default 1883, 8883 with TLS")
    m.add_argument(
        "--topic", required=True, metavar="FILTER", help="topic filter, e.g. 'factory/#' or 'spBv1.0/#'"
    )
    m.add_argument("--seconds", type=float, default=10.0, help="how long to listen (default %(default)s)")
    m.add_argument("--username")
    m.add_argument(
        "--password", help="a password, or $VAR to read it from the environment (default $MQTT_PASSWORD)"
    )
    m.add_argument("--tls", action="store_true", help="TLS with the system's trusted CAs")
    m.add_argument("--ca", type=Path, help="CA bundle (PEM) of the broker; implies --tls")
    m.add_argument("--cert", type=Path, help="client certificate (PEM) for mutual TLS; implies --tls")
    m.add_argument("--key", type=Path, help="its private key (PEM)")
    m.add_argument("--insecure", action="store_true", help="skip the broker's hostname check (test benches)")
    m.add_argument(
        "--rebirth",
        action="store_true",
        help="ask Sparkplug B edge nodes heard without a birth for one (NCMD Rebirth), to list their metrics",
    )
    _common(m, timeout=5.0)
    m.set_defaults(func=_mqtt)

    b = dsub.add_parser("modbus", help="read registers and show every plausible decoding side by side")
    b.add_argument("target", metavar="HOST[:PORT]", help="Modbus TCP device or gateway (port 502 by default)")
    b.add_argument("--unit", type=int, required=True, help="unit id (device address)")
    b.add_argument("--address", type=int, required=True, help="first register, 0-based (holding 0 is 40001)")
    b.add_argument("--count", type=int, required=True, help="registers to read (1-125)")
    b.add_argument("--table", choices=["holding", "input"], default="holding")
    b.add_argument("--expect", type=float, help="a value you know (from the HMI): rank the decodings near it")
    b.add_argument(
        "--pick",
        action="append",
        default=[],
        metavar="ADDRESS:TYPE[:ORDER[:SCALE]][=TAG]",
        help="write this decoding as a tag (repeatable), e.g. 4:float32:CDAB=line1/press01/force",
    )
    _common(b, timeout=3.0)
    b.set_defaults(func=_modbus)


def _common(p: argparse.ArgumentParser, *, timeout: float) -> None:
    p.add_argument("--source", metavar="NAME", help="source name in the plant.yaml (default: KIND-HOST)")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds per step (default %(default)s)")
    p.add_argument(
        "--format",
        choices=["yaml", "table"],
        default="yaml",
        help="yaml: plant.yaml on stdout, the table on stderr (default); table: the table alone, on stdout",
    )


def _run(args: argparse.Namespace, work: Coroutine[Any, Any, tuple[list[str], str]]) -> int:
    """Run one discovery; every expected failure is one line and exit 1."""
    if not args.verbose:
        for noisy in ("asyncua", "pymodbus", "paho"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        table, text = asyncio.run(work)
    except SourceError as e:
        print(e.line(), file=sys.stderr)
        return 1
    except (_Refused, ValueError) as e:
        print(f"discover {args.discover_command}: {_first_line(e)}", file=sys.stderr)
        return 1
    if args.format == "table":
        print("\n".join(table))
        return 0
    print("\n".join(table), file=sys.stderr)
    if text:
        sys.stdout.write(text)
    return 0


def _first_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"])
        what = err["msg"].removeprefix("Value error, ")
        return f"{where}: {what}" if where else what
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _header(command: str, what: str) -> list[str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        f"plantpulse discover {command}, {now}: {what}",
        "Check it: plantpulse check -c THIS_FILE; or paste the items under `sources:` of your plant.yaml.",
    ]


def _password(given: str | None, kind: str) -> tuple[str | None, str | None]:
    """(the password to log in with, what the plant.yaml says) for ``--password``."""
    from plantpulse.discover.fragment import secret_reference

    var, reference = secret_reference(given, _DEFAULT_PASSWORD_VAR[kind])
    if given is not None and var is None:
        return given, reference
    name = var or _DEFAULT_PASSWORD_VAR[kind]
    value = os.environ.get(name)
    if var is not None and value is None:
        raise _Refused(f"--password ${name}: environment variable {name} is not set")
    return value, reference if value is not None else None


def _absolute(path: Path | None) -> str | None:
    return str(path.expanduser().resolve()) if path is not None else None


# -- opcua ----------------------------------------------------------------------------------------


def _opcua(args: argparse.Namespace) -> int:
    return _run(args, _discover_opcua(args))


async def _discover_opcua(args: argparse.Namespace) -> tuple[list[str], str]:
    from plantpulse.collectors.opcua_nodeid import parse_node_id
    from plantpulse.collectors.opcua_session import Target
    from plantpulse.config import OpcUaSecurity
    from plantpulse.discover import opcua
    from plantpulse.discover.fragment import render, source_name

    if not args.endpoint.startswith("opc.tcp://"):
        raise _Refused(f"{args.endpoint!r}: an endpoint is opc.tcp://HOST:PORT[/PATH]")
    security: dict[str, Any] = {}
    if args.security_policy != "None":
        if args.certificate is None or args.private_key is None:
            raise _Refused(f"--security-policy {args.security_policy} needs --certificate and --private-key")
        security = {
            "policy": args.security_policy,
            "mode": args.mode or "SignAndEncrypt",
            "certificate": _absolute(args.certificate),
            "private_key": _absolute(args.private_key),
        }
        if args.server_certificate is not None:
            security["server_certificate"] = _absolute(args.server_certificate)
    elif args.mode or args.certificate or args.private_key or args.server_certificate:
        raise _Refused("--mode and certificates need --security-policy Basic256Sha256")
    settings = OpcUaSecurity.model_validate({k: v for k, v in security.items() if v is not None})
    password, reference = _password(args.password, "opcua") if args.username else (None, None)
    name = args.source or source_name("opcua", urlsplit(args.endpoint).hostname or "server")
    root = parse_node_id(args.root) if args.root else None
    target = Target(name, args.endpoint, settings, args.username, password, args.timeout)
    found = await opcua.browse_server(target, root=root, depth=args.depth, max_nodes=args.max_nodes)
    lines = opcua.table(found)
    if not any(v.numeric for v in found.variables):
        where = f"below {args.root}" if args.root else "in the Objects folder"
        raise _Refused(f"no numeric variables {where} ({len(found.variables)} variables found)")
    entry = opcua.source_entry(
        found,
        name=name,
        endpoint=args.endpoint,
        security=settings.model_dump(mode="json", exclude_defaults=True) or None,
        username=args.username,
        password=reference,
    )
    what = f"{sum(v.numeric for v in found.variables)} tags from {len(found.variables)} variables"
    return lines, render([entry], _header(f"opcua {args.endpoint}", what))


# -- mqtt -----------------------------------------------------------------------------------------


def _mqtt(args: argparse.Namespace) -> int:
    return _run(args, _discover_mqtt(args))


async def _discover_mqtt(args: argparse.Namespace) -> tuple[list[str], str]:
    from plantpulse.discover import mqtt
    from plantpulse.discover.fragment import render, source_name
    from plantpulse.discover.mqtt_infer import infer

    tls: dict[str, Any] | None = None
    if args.tls or args.ca or args.cert or args.key or args.insecure:
        tls = {"ca": _absolute(args.ca), "cert": _absolute(args.cert), "key": _absolute(args.key)}
        tls = {k: v for k, v in tls.items() if v is not None} | ({"insecure": True} if args.insecure else {})
    port = args.port or (8883 if tls is not None else 1883)
    password, reference = _password(args.password, "mqtt") if args.username else (None, None)
    name = args.source or source_name("mqtt", args.host)
    listen = mqtt.listening_source(
        args.topic,
        args.host,
        port,
        name=name,
        username=args.username,
        password=password,
        tls=tls,
        timeout=args.timeout,
    )
    heard = await mqtt.sniff(listen, args.seconds, rebirth=args.rebirth)
    if not heard.messages:
        raise _Refused(
            f"nothing published on {args.topic!r} in {args.seconds:g}s (mqtt://{args.host}:{port})"
        )
    found = infer(heard.messages, args.topic)
    lines = mqtt.table(found, heard.counts)
    connection: dict[str, Any] = {"host": args.host, "port": port}
    if tls is not None:
        connection["tls"] = tls
    if args.username:
        connection["username"] = args.username
        if reference is not None:
            connection["password"] = reference
    entries = mqtt.source_entries(found, name=name, connection=connection)
    if not entries:
        raise _Refused(f"nothing to read on {args.topic!r}: {len(heard.counts)} topics, none with numbers")
    what = f"{sum(heard.counts.values())} messages on {len(heard.counts)} topics in {args.seconds:g}s"
    return lines, render(entries, _header(f"mqtt {args.topic}", what))


# -- modbus ---------------------------------------------------------------------------------------


def _modbus(args: argparse.Namespace) -> int:
    return _run(args, _discover_modbus(args))


async def _discover_modbus(args: argparse.Namespace) -> tuple[list[str], str]:
    from plantpulse.collectors.modbus_cli import block_problem, parse_target, read_registers
    from plantpulse.discover import modbus
    from plantpulse.discover.fragment import render, source_name

    host, port = parse_target(args.target)
    if (problem := block_problem(args.address, args.count, args.unit)) is not None:
        raise _Refused(problem)
    picks = [modbus.parse_pick(p) for p in args.pick]
    name = args.source or source_name("modbus", host)
    entry = (
        modbus.source_entry(picks, name=name, host=host, port=port, unit=args.unit, table_name=args.table)
        if picks
        else None
    )
    words = await read_registers(
        host, port, args.address, (args.count,), unit=args.unit, table=args.table, wait=args.timeout
    )
    if isinstance(words, str):
        last = args.address + args.count - 1
        where = f"unit {args.unit} {args.table} {args.address}-{last}"
        raise SourceUnavailable(name, f"tcp://{host}:{port}", f"{where}: {words}")
    title = (
        f"unit {args.unit} {args.table} {args.address}-{args.address + len(words) - 1} (tcp://{host}:{port})"
    )
    lines = [title, *modbus.table(args.address, words, expect=args.expect)]
    if entry is None:
        lines.append("pick decodings with --pick ADDRESS:TYPE[:ORDER[:SCALE]][=TAG] to get a plant.yaml")
        return lines, ""
    lines.extend(f"picked {p}" for p in modbus.picked_values(picks, args.address, words))
    what = f"{len(picks)} tags on unit {args.unit}"
    return lines, render([entry], _header(f"modbus {args.target}", what))
