"""The one exception tree of plantpulse.

    PlantPulseError
    ├── ConfigError          invalid configuration or rule files; carries every Problem found
    ├── SourceError          a device or broker failed; carries the source name and address
    │   ├── SourceUnavailable   unreachable, timed out, connection lost: retried with backoff
    │   └── AuthenticationError credentials or certificates refused: not retried in a tight loop
    │       └── CertificateRejected  a certificate refused: ours by the server, or the server's
    │                                by our pin; said as such, never as a login failure
    ├── StoreError           the store failed; StoreUnavailable is retried (spooled meanwhile)
    │   └── StoreUnavailable
    ├── DeliveryError        a push channel refused or failed a notification
    ├── ListenError          a port this process serves on is taken or refused
    ├── SpoolInUse           another plantpulse holds the spool (and state) directory
    └── AccessDenied         a file or directory this process must write is refused

The last three end a command at start: ``cli.main`` prints each PlantPulseError as one line
(what, where, what to do; ``hint`` is set by the command that knows the option to change) and
exits 1; ``-v`` adds the traceback.

Library errors (asyncua, pymodbus, paho, psycopg, apprise) are translated into these at the
edge, keeping the device and address, so callers never import a protocol library to catch.
"""

from __future__ import annotations

import errno
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, order=True)
class Problem:
    """One finding in a user-written file, printed as ``FILE:LINE:COL: where: what``."""

    file: str
    line: int
    col: int
    where: str
    what: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.what}"


class PlantPulseError(Exception):
    """Base of every error plantpulse raises on purpose."""

    hint: str | None = None
    """What to do, when the command that caught it knows better than where it was raised."""


class ConfigError(PlantPulseError):
    """Configuration or rules are invalid; ``problems`` lists all of them, sorted."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(PlantPulseError):
    """A source (device, server, broker) failed."""

    def __init__(self, source: str, address: str, message: str) -> None:
        self.source = source
        self.address = address
        self.reason = message
        super().__init__(f"{source} ({address}): {message}")

    def line(self) -> str:
        """``ADDRESS: unavailable: REASON`` (or ``authentication failed``, ``certificate
        rejected``): how a command that gives up on the source says so."""
        kind = self.failure if isinstance(self, AuthenticationError) else "unavailable"
        return f"{self.address}: {kind}: {self.reason}"


class SourceUnavailable(SourceError):
    """The source cannot be reached right now; the runner retries with backoff."""


class AuthenticationError(SourceError):
    """The source refused our credentials or certificate; retried only slowly."""

    failure = "authentication failed"
    """How the runner names this kind of failure in its log line."""


class CertificateRejected(AuthenticationError):
    """A certificate was refused: the server's (it does not match the pinned one) or ours
    (untrusted, expired, wrong application URI); retried as slowly as a refused login."""

    failure = "certificate rejected"


class StoreError(PlantPulseError):
    """The store failed in a way retrying will not fix (schema, constraint, bad URL)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; writes are spooled and replayed later."""


class DeliveryError(PlantPulseError):
    """A notification channel failed to deliver."""


Service = Literal["http", "opcua", "modbus", "mqtt"]
SERVICE_NAMES: dict[Service, str] = {
    "http": "board, API and acknowledge links",
    "opcua": "OPC UA server",
    "modbus": "Modbus TCP server",
    "mqtt": "embedded MQTT broker",
}
_LISTEN_REASONS = {
    errno.EADDRINUSE: "the port is in use by another program",
    errno.EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    errno.EADDRNOTAVAIL: "that host is not an address of this machine",
}


class ListenError(PlantPulseError):
    """A server of ours cannot listen: the port is taken, privileged, or not ours to bind."""

    def __init__(self, service: Service, host: str, port: int, code: int) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.errno = code
        reason = _LISTEN_REASONS.get(code, os.strerror(code))
        super().__init__(f"cannot listen on {host}:{port} for the {SERVICE_NAMES[service]}: {reason}")

    def advise(self, option: str) -> None:
        """Set the hint: free the port, or move this server with ``option``."""
        other = f"choose another with {option}"
        self.hint = f"stop the program on that port, or {other}" if self.errno == errno.EADDRINUSE else other

    @classmethod
    def from_exception(cls, e: BaseException, service: Service, host: str, port: int) -> ListenError | None:
        """The ListenError behind ``e`` (an OSError of the bind, or a library error caused by
        one), or None when ``e`` is something else."""
        seen: BaseException | None = e
        while seen is not None:
            if isinstance(seen, OSError) and seen.errno in _LISTEN_REASONS:
                return cls(service, host, port, seen.errno)
            seen = seen.__cause__ or seen.__context__
        return None


class SpoolInUse(PlantPulseError):
    """The spool directory is locked by another live process: two plantpulse processes on
    one store (or one config) would interleave its input log."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        by = f"another plantpulse (pid {pid})" if pid is not None else "another plantpulse"
        super().__init__(f"spool {directory} is in use by {by}")
        self.hint = "stop that one first, or give this one another store"


class AccessDenied(PlantPulseError):
    """A file or directory plantpulse must create or write is refused by the system."""

    def __init__(self, what: str, path: Path, error: OSError) -> None:
        self.path = path
        message, self.hint = denied(what, path, error)
        super().__init__(message)

    @staticmethod
    def is_denied(error: OSError) -> bool:
        return error.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def denied(what: str, path: Path, error: OSError, verb: str = "write") -> tuple[str, str]:
    """(message, hint) for an OSError on ``path``: what could not be written, why, who owns it."""
    if error.errno == errno.EROFS:
        reason = "the file system is read-only"
    elif error.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    else:
        reason = error.strerror or type(error).__name__
    what = f"{what} " if what else ""
    fix = "free some space there" if error.errno == errno.ENOSPC else f"let user {_user()} {verb} there"
    return f"cannot {verb} {what}{path}: {reason}{_owner(path)}", f"{fix}, or choose another location"


def _user() -> str:
    """The effective user's name (not $USER: a service may run as another user than its env says)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _owner(path: Path) -> str:
    """`` (folder /x owned by root, mode 0755)``: the nearest existing part of ``path``."""
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        st = here.stat()
        owner = here.owner()
    except (OSError, KeyError, NotImplementedError):
        return ""
    kind = "folder" if here.is_dir() else "file"
    return f" ({kind} {here} owned by {owner}, mode {st.st_mode & 0o777:04o})"
