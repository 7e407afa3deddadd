"""``plantpulse`` command line. Each area registers its own subcommands through ``register``.

Exit codes: 0 success, 1 invalid input (config, rules, failing rule tests) or an expected
failure, 2 usage errors, 130 interrupted, 141 (128 + SIGPIPE, as a killed ``cat`` reports) when
the reader of stdout went away (``plantpulse alerts export | head``): quietly, without a traceback.

Expected failures are translated here, once, into one line on stderr (what, where, what to
do): every ``PlantPulseError`` (a port in use, the spool held by another plantpulse, a store
that refuses, a broker that is not there, a file we may not write) and the ``OSError``s of
files and ports that reach us untranslated. ``-v`` prints the traceback before that line.
Library chatter (asyncua, amqtt, pymodbus, ...) is the libraries' business: below ERROR, and
every traceback they log, it is shown only with ``-v`` (logsetup.py).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from plantpulse.errors import ConfigError, PlantPulseError, SourceError, StoreError, denied
from plantpulse.logsetup import setup_logging

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
    "plantpulse.dashboards.cli",  # board pin
    "plantpulse.kpi.cli",  # kpi check | report | alarms, trace
    "plantpulse.alertcli",  # alerts list | show | export
    "plantpulse.observe.status",  # status
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


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return code
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader is gone (``| head``). Python flushes stdout again at exit, which would
        # fail again with a traceback; point the descriptor at /dev/null so that flush is
        # silent (the recipe of the Python docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (PlantPulseError, OSError) as e:
        line = error_line(e)
        if line is None:
            raise  # not an expected failure: a bug, whose traceback is the report
        if args.verbose:
            traceback.print_exc()
        print(f"plantpulse: {line}", file=sys.stderr, flush=True)
        return 1


_OS_HINTS = {
    errno.EADDRINUSE: "stop the program using that port, or choose another port",
    errno.ENOSPC: "free some space there, or choose another location",
}


def error_line(e: BaseException) -> str | None:
    """One line for an expected failure (what, where, what to do); None for anything else."""
    if isinstance(e, SourceError):
        text = e.line()
    elif isinstance(e, StoreError):
        text = f"store: {e}"
    elif isinstance(e, PlantPulseError):
        text = str(e)
    elif isinstance(e, OSError) and e.filename is not None and e.errno in (
        errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
    ):  # fmt: skip
        message, advice = denied("", Path(os.fsdecode(e.filename)), e, "use")
        return f"{message}; {advice}"
    elif isinstance(e, OSError) and e.errno in _OS_HINTS:
        return f"{e.strerror or e}: {_OS_HINTS[e.errno]}"
    else:
        return None
    hint = getattr(e, "hint", None)
    return f"{text}; {hint}" if hint else text


if __name__ == "__main__":
    sys.exit(main())
