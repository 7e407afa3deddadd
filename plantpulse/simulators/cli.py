"""``plantpulse simulate``: serve a scenario over OPC UA for a test bench, until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import load_scenario, node_id
from plantpulse.timefmt import iso_ms

log = logging.getLogger("plantpulse.simulate")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` to ``plantpulse``."""
    p = sub.add_parser("simulate", help="serve a simulated line (OPC UA) for a test bench")
    p.add_argument("--scenario", required=True, help="scenario YAML file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4840, help="0 picks a free port")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)  # ConfigError -> exit 1 with FILE:LINE:COL lines
    return asyncio.run(_serve(scenario, args.host, args.port, args.duration))


async def _serve(scenario: Any, host: str, port: int, duration: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with OpcUaSimulator(scenario, host, port) as sim:
        tags = scenario.tag_names()
        log.info(
            "serving %s: %d welders, %d tags, tick %s, start %s, e.g. %s",
            sim.endpoint,
            scenario.welders,
            len(tags),
            f"{scenario.tick / 1e6:g}ms",
            iso_ms(sim.start_ns),
            node_id(tags[0]),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        log.info("stopping (%d ticks, %d values written)", sim.ticks_written, sim.values_written)
    return 0
