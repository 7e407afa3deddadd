"""Logging for the command line: our own log lines, and the protocol libraries kept quiet.

asyncua, amqtt, pymodbus and friends log what they see from the inside: a server without an
encrypting policy, a session timeout the server shortened, and a full traceback each second
while a device is away ("Publish iteration crashed"). Each failure that matters is reported by
plantpulse itself, once, in one line (the collectors' runner, ``cli.main``), so at the default
verbosity those libraries show only ERROR records, and never a traceback; ``-v`` shows their
warnings and tracebacks, ``-vv`` everything at DEBUG.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["LIBRARIES", "setup_logging"]

LIBRARIES = ("asyncua", "amqtt", "pymodbus", "paho", "apprise", "transitions", "uvicorn.access")
"""Loggers of the libraries that chatter (uvicorn.error stays: it reports our app's failures)."""


class _QuietLibraries(logging.Filter):
    """Drops the libraries' records that carry a traceback (what failed, we say ourselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info:
            return True
        return not any(record.name == lib or record.name.startswith(lib + ".") for lib in LIBRARIES)


def setup_logging(verbose: int) -> None:
    """``verbose``: -1 warnings only, 0 info (libraries: errors, no tracebacks), 1 debug
    (libraries: warnings and tracebacks), 2 debug everywhere."""
    level = logging.WARNING if verbose < 0 else logging.INFO if verbose == 0 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose >= 2:
        return
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if verbose >= 1 else logging.ERROR)
    if verbose < 1:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
                handler.addFilter(_QuietLibraries())
