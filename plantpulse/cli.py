"""``plantpulse`` command line. Each area registers its own subcommands through ``register``.

Exit codes: 0 success, 1 invalid input (config, rules, failing rule tests), 2 usage errors,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from plantpulse.errors import ConfigError

# Modules that contribute subcommands; each has ``register(subparsers) -> None`` and sets
# ``func(args) -> int`` on its parsers. Imported here, explicitly, not discovered.
_COMMAND_MODULES = (
    "plantpulse.commands",  # demo, run, check, ack
    "plantpulse.rules.cli",  # rules check | test | backtest
    "plantpulse.simulators.cli",  # simulate
    "plantpulse.store.cli",  # db migrate | status
    "plantpulse.people.cli",  # roster show | check
    "plantpulse.collectors.modbus_cli",  # modbus plan | probe
    "plantpulse.discover.cli",  # discover opcua | mqtt | modbus
    "plantpulse.dashboards.grafana.cli",  # dashboards generate | push
    "plantpulse.kpi.cli",  # kpi check | report | alarms, trace
    "plantpulse.scaleout.cli",  # kafka topics
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plantpulse", description="Industrial data ingestion and real-time alerting."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose < 0 else logging.INFO if verbose == 0 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose < 2:
        for noisy in ("asyncua", "uvicorn.access", "apprise", "pymodbus", "amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
