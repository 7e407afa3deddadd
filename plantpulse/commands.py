"""Top-level commands: ``demo``, ``run``, ``check`` and ``ack``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.config import load_config
from plantpulse.timefmt import NS_PER_S, format_duration, iso_ms

DEMO_DIR = Path(__file__).parent / "demo"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "demo", help="the whole system on loopback: simulated welding line, pipeline, SQLite, push receiver"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)"
    )
    p.add_argument("--store", default="sqlite:///plantpulse-demo.db", help="store URL (default: %(default)s)")
    p.add_argument(
        "--listen", default="127.0.0.1:8080", help="live board, API and ack links (default: %(default)s)"
    )
    p.add_argument("--scenario", type=Path, default=DEMO_DIR / "weld-line.yaml", help="simulator scenario")
    p.add_argument("--rules", type=Path, nargs="+", default=[DEMO_DIR / "weld-rules.yaml"], help="rule files")
    p.add_argument(
        "--mqtt-broker", default=None, metavar="HOST:PORT", help="MQTT broker (default: an embedded one)"
    )
    p.set_defaults(func=_demo)

    p = sub.add_parser("run", help="run the pipeline for a plant")
    p.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument(
        "--role", choices=("collect", "evaluate", "sink"), default=None,
        help="one role of a deployment on Kafka (docs/scale-out.md); default: everything in one process",
    )  # fmt: skip
    p.add_argument(
        "--source", action="append", default=None, metavar="NAME",
        help="with --role collect: run only this source of plant.yaml (repeatable; default: all)",
    )  # fmt: skip
    p.set_defaults(func=_run)

    p = sub.add_parser("check", help="validate a plant configuration and every rule and KPI file it names")
    p.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    p.set_defaults(func=_check)

    p = sub.add_parser("ack", help="acknowledge an alert")
    p.add_argument("alert_id")
    p.add_argument("--by", required=True, help="who acknowledges")
    p.add_argument("--comment", default=None)
    where = p.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="plant.yaml (its store is used)")
    where.add_argument("--store", default=None, help="store URL (default: sqlite:///plantpulse.db)")
    p.set_defaults(func=_ack)


def _check(args: argparse.Namespace) -> int:
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(args.config)  # also validates the KPI files against the team and rules
    rules = load_rule_files(loaded.rule_files)
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    tags = sum(len(s.tags) for s in loaded.plant.sources)
    kpis = ""
    if loaded.kpi_files:
        from plantpulse.kpi.loader import load_kpi_files

        n = len(load_kpi_files(loaded.kpi_files).kpis)
        kpis = f", {n} KPIs in {len(loaded.kpi_files)} files"
    print(
        f"{args.config}: ok: {len(loaded.plant.sources)} sources, {tags} tags, "
        f"{len(rules)} rules in {len(loaded.rule_files)} files{kpis}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from plantpulse.app import run_pipeline
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(args.config)
    if args.role is not None:
        from plantpulse.scaleout.cli import run_role

        return run_role(args.role, loaded, args.duration, sources=args.source)
    rules = load_rule_files(loaded.rule_files)
    result = asyncio.run(run_pipeline(loaded.plant, rules, duration=args.duration, on_alert=_print_alert))
    _print_summary(result.stats.samples, result.stats.raised, result.stats.cleared, result.notifier_counts)
    return 0


def _ack(args: argparse.Namespace) -> int:
    from plantpulse.store import open_store

    url = (
        load_config(args.config).plant.store.url if args.config else (args.store or "sqlite:///plantpulse.db")
    )

    async def ack() -> int:
        store = open_store(url)
        await store.open()
        try:
            alert = await store.acknowledge(
                args.alert_id, args.by, time.time_ns(), args.comment, source="cli"
            )
        finally:
            await store.close()
        if alert is None:
            print(f"no alert {args.alert_id}", file=sys.stderr)
            return 1
        print(
            f"{alert.id}: acknowledged by {alert.acked_by} at {iso_ms(alert.acked_at or 0)} "
            f"({alert.rule} {alert.tag})"
        )
        return 0

    return asyncio.run(ack())


def _demo(args: argparse.Namespace) -> int:
    from plantpulse.demo import run_demo

    broker = None
    if args.mqtt_broker:
        host, _, port = args.mqtt_broker.rpartition(":")
        broker = (host or "127.0.0.1", int(port))
    demo = run_demo(args.scenario, args.rules, args.store, args.duration, args.listen, mqtt_broker=broker)
    return asyncio.run(demo)


def _print_alert(ev: AlertEvent) -> None:
    clock = time.strftime("%H:%M:%S", time.localtime(ev.at // NS_PER_S))
    if ev.kind == "raised":
        line = f"{clock} RAISED  {ev.severity:<8} {ev.rule} {ev.tag}: {ev.message}"
    else:
        active = format_duration(ev.at - ev.raised_at)
        line = f"{clock} CLEARED {ev.severity:<8} {ev.rule} {ev.tag} after {active}"
    print(line, flush=True)


def _print_summary(samples: int, raised: int, cleared: int, pushes: dict[str, int]) -> None:
    push_text = ", ".join(f"{k} {v}" for k, v in sorted(pushes.items())) or "none"
    print(
        f"summary: {samples} samples, {raised} alerts raised, {cleared} cleared; pushes: {push_text}",
        flush=True,
    )
