"""``discover modbus``: read a register range and show every plausible decoding side by side.

A Modbus device says nothing about what its registers hold, so the user recognises a value
they know (from the HMI, the manual, a display) among the candidates: each register as
int16/uint16 (and scaled by 0.1 and 0.01), each pair as int32/uint32/float32 in the four
word orders, each quadruple as float64; ``--expect VALUE`` ranks the decodings (scales 1, 0.1,
0.01, 0.001, 10 included) closest to it. Floats that are NaN, infinite or implausibly large
or small are shown as ``·``. ``--pick ADDRESS:TYPE[:ORDER[:SCALE]][=TAG]`` then writes the
chosen decodings as tags of a Modbus source.

Pure except ``read``; the decoding is the collector's own (``modbus_plan.decode``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from plantpulse.collectors.modbus_config import ModbusTag
from plantpulse.collectors.modbus_plan import decode
from plantpulse.discover.fragment import segment
from plantpulse.discover.table import columns

__all__ = ["ORDERS", "Candidate", "Pick", "candidates", "matches", "parse_pick", "source_entry", "table"]

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
_WIDE = {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}
_SCALES = (1.0, 0.1, 0.01, 0.001, 10.0)
_RANK = ("uint16", "int16", "float32", "uint32", "int32", "float64")
_PICK = re.compile(r"^\s*(\d+):([a-z0-9]+)(?::([A-Da-d]{4})?)?(?::([-+0-9.eE]+))?\s*(?:=(.+))?$")


@dataclass(frozen=True)
class Candidate:
    """One decoding of the registers at ``address``."""

    address: int
    type: str
    order: str
    value: float

    @property
    def plausible(self) -> bool:
        if not math.isfinite(self.value):
            return False
        if not self.type.startswith("float"):
            return True
        return self.value == 0 or 1e-6 <= abs(self.value) <= 1e9

    def pick(self, scale: float = 1.0) -> str:
        text = f"{self.address}:{self.type}:{self.order}"
        return text + (f":{scale:g}" if scale != 1 else "")


def candidates(address: int, words: Sequence[int]) -> list[Candidate]:
    """Every decoding of the block: 16-bit per register, 32-bit per pair, float64 per four."""
    out: list[Candidate] = []
    for i in range(len(words)):
        for t in ("int16", "uint16"):
            out.append(Candidate(address + i, t, "ABCD", _decode(words[i : i + 1], t, "ABCD")))
    for t, n in _WIDE.items():
        for i in range(len(words) - n + 1):
            out.extend(Candidate(address + i, t, o, _decode(words[i : i + n], t, o)) for o in ORDERS)
    return out


def _decode(words: Sequence[int], type_: str, order: str) -> float:
    tag = ModbusTag.model_validate({"name": "probe", "address": 0, "type": type_, "byte_order": order})
    return decode(words, tag)


def matches(
    found: Sequence[Candidate], expect: float, *, most: int = 10
) -> list[tuple[float, Candidate, float]]:
    """(scaled value, decoding, scale) closest to ``expect``: within 2% (or 0.05), closest first."""
    tolerance = max(abs(expect) * 0.02, 0.05)
    hits = [
        (c.value * s, c, s)
        for c in found
        if c.plausible
        for s in _SCALES
        if abs(c.value * s - expect) <= tolerance and (s == 1 or not c.type.startswith("float"))
    ]
    # equally close: unscaled first, then the fewest registers, floats before integers of a width
    hits.sort(key=lambda h: (abs(h[0] - expect), h[2] != 1, _RANK.index(h[1].type), h[1].address))
    return hits[:most]


def table(address: int, words: Sequence[int], *, expect: float | None = None) -> list[str]:
    """The whole block decoded: registers, pairs, quadruples (and the matches for ``expect``)."""
    found = candidates(address, words)
    by = {(c.address, c.type, c.order): c for c in found}
    rows: list[tuple[str, ...]] = [("register", "hex", "int16", "uint16", "x0.1", "x0.01")]
    for i, w in enumerate(words):
        a = address + i
        u = by[(a, "uint16", "ABCD")].value
        rows.append(
            (
                str(a),
                f"0x{w:04X}",
                _show(by[(a, "int16", "ABCD")]),
                f"{u:.0f}",
                f"{u * 0.1:.1f}",
                f"{u * 0.01:.2f}",
            )
        )
    lines = columns(rows)
    for t, n in _WIDE.items():
        starts = range(address, address + len(words) - n + 1)
        if not starts:
            continue
        lines.append("")
        head = (f"{t} at", *ORDERS)
        lines.extend(columns([head, *((str(a), *(_show(by[(a, t, o)]) for o in ORDERS)) for a in starts)]))
    if expect is not None:
        lines.append("")
        hits = matches(found, expect)
        if not hits:
            lines.append(f"no decoding is within 2% of {expect:g}")
        for value, c, scale in hits:
            lines.append(
                f"{value:.6g} = {c.type} {c.order} at {c.address}"
                + (f" x{scale:g}" if scale != 1 else "")
                + f": --pick {c.pick(scale)}"
            )
    lines.append("· = NaN, infinite, or implausibly large or small for a float")
    return lines


def _show(c: Candidate) -> str:
    if not c.plausible:
        return "·"
    if c.type.startswith("float"):
        return f"{c.value:.7g}"
    return f"{c.value:.0f}"


# -- picks and the fragment -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    address: int
    type: str
    order: str = "ABCD"
    scale: float = 1.0
    name: str | None = None


def parse_pick(text: str) -> Pick:
    """``4:float32:CDAB``, ``8:uint16::0.01``, ``0:float64=line1/weld01/current`` -> Pick."""
    m = _PICK.match(text)
    if m is None:
        raise ValueError(f"--pick {text!r}: write ADDRESS:TYPE[:ORDER[:SCALE]][=TAG], e.g. 4:float32:CDAB")
    address, type_, order, scale, name = m.groups()
    try:
        factor = float(scale) if scale else 1.0
    except ValueError:
        raise ValueError(f"--pick {text!r}: scale {scale!r} is not a number") from None
    return Pick(int(address), type_, (order or "ABCD").upper(), factor, name.strip() if name else None)


def source_entry(
    picks: Sequence[Pick], *, name: str, host: str, port: int, unit: int, table_name: str
) -> dict[str, Any]:
    """The ``sources:`` item with one tag per pick; ValueError (one line) for a pick the
    collector could not decode (wrong type, order for the type, ...)."""
    tags: list[dict[str, Any]] = []
    for p in picks:
        tag: dict[str, Any] = {
            "name": p.name or f"{segment(name)}/unit{unit}/{table_name}_{p.address}",
            "address": p.address,
            "type": p.type,
        }
        if table_name != "holding":
            tag["table"] = table_name
        if p.order != "ABCD":
            tag["byte_order"] = p.order
        if p.scale != 1:
            tag["scale"] = p.scale
        try:
            ModbusTag.model_validate(tag)
        except ValidationError as e:
            why = e.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"--pick {p.address}:{p.type}:{p.order}: {why}") from None
        tags.append(tag)
    return {
        "kind": "modbus",
        "name": name,
        "tcp": {"host": host, "port": port},
        "unit_id": unit,
        "tags": tags,
    }


def picked_values(picks: Sequence[Pick], address: int, words: Sequence[int]) -> list[str]:
    """What each pick reads now (from the block read), for the user to confirm."""
    out = []
    for p in picks:
        n = _WIDE.get(p.type, 1)
        i = p.address - address
        if i >= 0 and i + n <= len(words) and p.type in (*_WIDE, "int16", "uint16"):
            value = f"{_decode(words[i : i + n], p.type, p.order) * p.scale:.6g}"
        else:
            value = "(outside the registers read)"
        out.append(
            f"{p.address}:{p.type}:{p.order}" + (f" x{p.scale:g}" if p.scale != 1 else "") + f" = {value}"
        )
    return out
