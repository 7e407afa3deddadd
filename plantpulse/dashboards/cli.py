"""``plantpulse board pin``: the hashed PIN a person's ``board_pin:`` holds (docs/dashboards.md)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from plantpulse.dashboards.pins import MIN_PIN, hash_pin


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("board", help="the shop-floor board")
    bsub = p.add_subparsers(dest="board_command", metavar="COMMAND", required=True)
    pin = bsub.add_parser(
        "pin", help="hash a PIN for a person's board_pin: (asked twice on a terminal, else one line of stdin)"
    )
    pin.set_defaults(func=cmd_pin)


def cmd_pin(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        first = getpass.getpass("PIN: ")
        if getpass.getpass("again: ") != first:
            print("the two PINs differ", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < MIN_PIN:
        print(f"a PIN has at least {MIN_PIN} characters", file=sys.stderr)
        return 1
    print(f"board_pin: {hash_pin(first)}")
    return 0
