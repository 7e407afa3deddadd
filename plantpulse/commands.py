"""Top-level commands: ``demo``, ``run``, ``check`` and ``ack``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from plantpulse.config import StreamConfig, load_config
from plantpulse.errors import ListenError, SourceUnavailable
from plantpulse.timefmt import NS_PER_S

log = logging.getLogger(__name__)

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
    p.add_argument(
        "--lang", choices=["zh", "en"], default=None, help="language of the run (default: from the locale)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the previous run's store and state (default: start afresh, removing them)",
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
    where.add_argument(
        "-c", "--config", type=Path, help="plant.yaml: its running process (api:), else its outbox and store"
    )
    where.add_argument("--store", default=None, help="store URL (default: sqlite:///plantpulse.db)")
    p.set_defaults(func=_ack)


def _check(args: argparse.Namespace) -> int:
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(args.config, need_sources=True)  # also validates KPI files against team and rules
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
    from plantpulse.console import Console
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(args.config, need_sources=args.role in (None, "collect"))
    if args.role is not None:
        from plantpulse.scaleout.cli import run_role

        return run_role(args.role, loaded, args.duration, sources=args.source)
    rules = load_rule_files(loaded.rule_files)
    console = Console(loaded.plant.team.language)

    async def run(stop: asyncio.Event) -> int:
        result = await run_pipeline(
            loaded.plant, rules, stop=stop, duration=args.duration, on_alert=console.alert, loaded=loaded
        )
        stats = result.stats
        console.summary(stats.samples, stats.raised, stats.cleared, result.notifier_counts)
        return 0

    try:
        return serve(run, loaded.plant.stream)
    except ListenError as e:
        e.advise(f"api.listen in {args.config}")
        raise


def serve(main: Callable[[asyncio.Event], Awaitable[int]], stream: StreamConfig) -> int:
    """Run a long-running command until it returns or a signal stops it.

    The first SIGINT/SIGTERM sets the stop event: a clean stop, each step bounded by
    ``stream.stop_timeout``. A second one exits at once (130 for SIGINT, 143 for SIGTERM) with
    one line on stderr; so does a stop that overruns every step's bound together (a backstop,
    for a process so stuck that its own deadlines cannot fire). Handlers are plain ``signal``
    handlers, not the event loop's: they run even while the loop is busy. A store that
    refuses for good ends the command with one line and exit 1.
    """
    signals: list[int] = []
    backstop = 6 * stream.stop_timeout / NS_PER_S + 10

    async def go() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def handler(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            signals.append(signum)
            if len(signals) > 1:
                os.write(2, f"plantpulse: second {name} received, exiting at once\n".encode())
                os._exit(128 + signum)
            loop.call_soon_threadsafe(stop.set)
            loop.call_soon_threadsafe(log.info, "%s received: stopping (send it again to exit at once)", name)
            timer = threading.Timer(backstop, _overrun, (name, backstop, 128 + signum))
            timer.daemon = True
            timer.start()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return await main(stop)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    return asyncio.run(go())


def _overrun(name: str, seconds: float, code: int) -> None:
    os.write(2, f"plantpulse: stop after {name} did not finish within {seconds:.0f} s, exiting\n".encode())
    os._exit(code)


def _ack(args: argparse.Namespace) -> int:
    from plantpulse.config import StoreConfig
    from plantpulse.notifier.ack_command import acknowledge

    if args.config:
        plant = load_config(args.config).plant
        store, api = plant.store, plant.api
    else:
        store, api = StoreConfig(url=args.store or "sqlite:///plantpulse.db"), None
    result = asyncio.run(acknowledge(args.alert_id, args.by, args.comment, store, api))
    print(result.text, file=sys.stdout if result.code == 0 else sys.stderr)
    return result.code


def _demo(args: argparse.Namespace) -> int:
    from plantpulse.demo import run_demo
    from plantpulse.demo.text import default_language

    if not args.verbose:  # the demo narrates, in its language; our English logs come with -v
        logging.getLogger("plantpulse").setLevel(logging.WARNING)
    broker = None
    if args.mqtt_broker:
        host, _, port = args.mqtt_broker.rpartition(":")
        broker = (host or "127.0.0.1", int(port))
    lang = args.lang or default_language(os.environ)

    def demo(stop: asyncio.Event) -> Awaitable[int]:
        return run_demo(
            args.scenario, args.rules, args.store, args.duration, args.listen,
            mqtt_broker=broker, stop=stop, lang=lang, resume=args.resume,
        )  # fmt: skip

    try:
        return serve(demo, StreamConfig())
    except ListenError as e:
        e.advise("--listen HOST:PORT")
        raise
    except SourceUnavailable as e:
        e.hint = "start that broker, or leave out --mqtt-broker to use an embedded one"
        raise
