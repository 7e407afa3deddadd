"""Subcommands of this area (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands to ``plantpulse``."""
