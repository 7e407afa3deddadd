"""Commands of the scale-out: ``plantpulse kafka topics [--create]`` and the roles of
``plantpulse run --role collect|evaluate|sink`` (``commands.py`` hands ``--role`` here)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from plantpulse.config import LoadedConfig, load_config
from plantpulse.scaleout.client import KafkaUnavailable

ROLES = ("collect", "evaluate", "sink")

# faust and aiokafka narrate every rebalance at INFO; plantpulse logs what matters itself
_NOISY = ("faust", "mode", "aiokafka", "kafka")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("kafka", help="the Kafka side of a scaled-out deployment (docs/scale-out.md)")
    ksub = p.add_subparsers(dest="kafka_command", metavar="COMMAND", required=True)
    t = ksub.add_parser(
        "topics", help="show the deployment's topics on the brokers; --create adds missing ones"
    )
    t.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml with a kafka: section")
    t.add_argument("--create", action="store_true", help="create missing topics (partitions, cleanup policy)")
    t.set_defaults(func=_topics)


def _kafka_section(loaded: LoadedConfig, what: str) -> bool:
    if loaded.plant.kafka is None:
        print(f"{loaded.path}: {what} needs a kafka: section (docs/scale-out.md)", file=sys.stderr)
        return False
    return True


def _topics(args: argparse.Namespace) -> int:
    from plantpulse.scaleout.topics import ensure_topics

    loaded = load_config(args.config)
    if not _kafka_section(loaded, "kafka topics"):
        return 1
    if logging.getLogger().level > logging.DEBUG:  # a refused connection is reported below, once
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    assert loaded.plant.kafka is not None
    try:
        states = asyncio.run(ensure_topics(loaded.plant.kafka, create=args.create))
    except KafkaUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    width = max(len(s.spec.name) for s in states)
    for s in states:
        policy = s.spec.config["cleanup.policy"]
        parts = f"{s.spec.partitions:>5} partitions"
        print(f"{s.spec.name:<{width}}  {parts}  {policy:<7}  {s.status}  ({s.spec.role})")
    bad = [s for s in states if not s.ok]
    if bad and not args.create and all(s.partitions is None for s in bad):
        print("run with --create to create the missing topics", file=sys.stderr)
    return 1 if bad else 0


T = TypeVar("T")


async def _until_signalled(role: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run a role with a stop event that SIGINT and SIGTERM set: the command owns the signals."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await role(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_role(
    role: str, loaded: LoadedConfig, duration: float | None, *, sources: list[str] | None = None
) -> int:
    """``plantpulse run --role ROLE``: check the topics, run the role, print its summary.
    ``sources`` (collect only) names the sources this collector runs."""
    from plantpulse.rules.loader import load_rule_files
    from plantpulse.scaleout.topics import ensure_topics

    if not _kafka_section(loaded, f"run --role {role}"):
        return 1
    plant = loaded.plant
    assert plant.kafka is not None
    names = {s.name for s in plant.sources}
    if sources and role != "collect":
        print("error: --source is for --role collect", file=sys.stderr)
        return 1
    unknown = [n for n in sources or () if n not in names]
    if unknown:
        print(f"error: {loaded.path} has no source {unknown[0]!r} (sources: {', '.join(sorted(names))})",
              file=sys.stderr)  # fmt: skip
        return 1
    if logging.getLogger().level > logging.DEBUG:
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        states = asyncio.run(ensure_topics(plant.kafka, create=False))
    except KafkaUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    missing = [s for s in states if not s.ok]
    if missing:
        s = missing[0]
        print(f"error: topic {s.spec.name} {s.status}: run plantpulse kafka topics --create -c {loaded.path}",
              file=sys.stderr)  # fmt: skip
        return 1
    rules = load_rule_files(loaded.rule_files)
    if role == "collect":
        from plantpulse.scaleout.collect import run_collect

        c = asyncio.run(
            _until_signalled(
                lambda stop: run_collect(plant, rules, stop=stop, duration=duration, sources=sources)
            )
        )
        print(f"summary: {c.samples} samples in {c.messages} messages; send failures {c.send_failures}",
              flush=True)  # fmt: skip
    elif role == "evaluate":
        from plantpulse.scaleout.evaluate import EvaluatorFailed, run_evaluate

        try:
            es = asyncio.run(
                _until_signalled(lambda stop: run_evaluate(plant, rules, stop=stop, duration=duration))
            )
        except EvaluatorFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"summary: {es.samples} samples in {es.messages} messages, {es.raised} alerts raised, "
              f"{es.cleared} cleared; {es.skipped} messages already evaluated", flush=True)  # fmt: skip
    else:
        from plantpulse.scaleout.sink import run_sink

        ss = asyncio.run(_until_signalled(lambda stop: run_sink(plant, stop=stop, duration=duration)))
        print(f"summary: {ss.samples} samples stored ({ss.replayed} batches already held), "
              f"{ss.raised} alerts raised, {ss.cleared} cleared, {ss.duplicates} duplicates dropped",
              flush=True)  # fmt: skip
    return 0
