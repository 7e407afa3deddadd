"""Collector-side refinements of SourceError, so the runner can count errors by cause.

SourceError (plantpulse.errors)
├── TagError        one tag's address is malformed or refused; the other tags keep flowing
└── SamplesDropped  the pipeline stayed full past the source timeout; samples were dropped
"""

from __future__ import annotations

from plantpulse.errors import SourceError

__all__ = ["SamplesDropped", "TagError"]


class TagError(SourceError):
    """A tag cannot be read (bad NodeId, unknown node, bad register); reported, not fatal."""

    cause = "tag"
    logged = False
    """True when the collector logs these itself (once per cause and outage of a Modbus
    request, which only it sees recover); the runner then counts without logging."""


class SamplesDropped(SourceError):
    """Samples were dropped because the pipeline did not take them within the timeout."""

    cause = "dropped"
