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
    └── DeliveryError        a push channel refused or failed a notification

Library errors (asyncua, pymodbus, paho, psycopg, apprise) are translated into these at the
edge, keeping the device and address, so callers never import a protocol library to catch.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        super().__init__(f"{source} ({address}): {message}")


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
