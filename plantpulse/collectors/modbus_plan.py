"""Pure Modbus request planning and register decoding: no I/O, no pymodbus, no clock.

Planning. One poll of a source reads as few, as small requests as the device allows: tags are
grouped by (unit id, table), sorted by address, and a request grows over the next tag while the
hole between them is at most ``max_gap`` registers (``16 * max_gap`` bits on coils and discrete
inputs: the same bytes on the wire) and the request stays within ``max_registers`` (<= 125) or
``max_bits`` (<= 2000). Greedy from the lowest address, so the plan is deterministic: the same
config always gives the same requests, in (unit, table, address) order.

Byte orders. A value's bytes in big-endian order are ``A B C D`` (``A..H`` for 64 bits). The
four names say how a device lays them into its 16-bit registers, as libmodbus and Telegraf name
them: ``ABCD`` big-endian; ``CDAB`` registers in reverse order (low word first); ``BADC`` bytes
swapped inside each register; ``DCBA`` both, i.e. little-endian. For 64-bit types the same two
flags apply to four registers (``CDAB`` is ``GHEFCDAB``, ``DCBA`` is ``HGFEDCBA``); for one
register only the byte swap matters. Strings are ``ABCD`` (high byte first) or ``BADC``.

Values. ``value = raw * scale + offset``; a string register block holds a number written as
ASCII text (scales, barcode readers), decoded with ``float()``; text that is not a number is
NaN, hence a bad sample.

Rounding. An integer register (``int16`` ... ``int64``, ``bool``, ``bit``) scaled by a decimal
``scale`` and ``offset`` has exactly ``d = max(decimals(scale), decimals(offset))`` decimals,
``decimals`` counting the digits after the point of the number as written (``0.1`` -> 1,
``0.25`` -> 2, ``273.15`` -> 2, ``1e-05`` -> 5, ``10`` -> 0). Binary floating point gets the
last bit wrong (``12 * 0.1`` is ``1.2000000000000002``), so such values are rounded to ``d``
decimals: ``rint(v * 10**d) / 10**d``, which is the double nearest the exact decimal. Not
rounded: ``scale: 1, offset: 0`` (nothing to round), floats and strings (their precision is
their own, not the scale's), and values whose ``|v| * 10**d`` reaches 2**53 (past it a double
holds no decimals to correct).

``decode`` is the plain, per-tag reference; ``RequestDecoder`` decodes every tag of one
response at once with numpy (gather, byte swap, reinterpret) and is what the collector uses.
The property tests hold the two to each other and to ``encode``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from plantpulse.collectors.modbus_config import BIT_TABLES, ModbusSource, ModbusTag, Table

__all__ = ["TABLES", "Request", "RequestDecoder", "decimals", "decode", "encode", "plan", "to_words"]

TABLES: tuple[Table, ...] = ("coil", "discrete_input", "holding", "input")
_TABLE_RANK = {t: i for i, t in enumerate(TABLES)}
_STRUCT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "float32": "f",
    "float64": "d",
}
_NUMPY = {
    k: ">" + v
    for k, v in {
        "int16": "i2",
        "uint16": "u2",
        "int32": "i4",
        "uint32": "u4",
        "int64": "i8",
        "float32": "f4",
        "float64": "f8",
    }.items()
}

Words = Sequence[int] | npt.NDArray[np.uint16]


@dataclass(frozen=True, slots=True)
class Request:
    """One read: ``count`` registers (or bits) of ``table`` from ``address`` on device ``unit``."""

    unit: int
    table: Table
    address: int
    count: int
    tags: tuple[ModbusTag, ...]

    @property
    def end(self) -> int:
        """One past the last register (or bit) read."""
        return self.address + self.count

    def describe(self) -> str:
        what = "bits" if self.table in BIT_TABLES else "registers"
        return f"unit {self.unit} {self.table} {self.address}-{self.end - 1} ({self.count} {what})"


def plan(source: ModbusSource, *, merge: bool = True) -> list[Request]:
    """The requests of one poll; ``merge=False`` gives one request per tag (for comparison)."""
    groups: dict[tuple[int, Table], list[ModbusTag]] = {}
    for tag in source.tags:
        groups.setdefault((source.unit_of(tag), tag.table), []).append(tag)
    out: list[Request] = []
    for unit, table in sorted(groups, key=lambda k: (k[0], _TABLE_RANK[k[1]])):
        tags = sorted(groups[(unit, table)], key=lambda t: (t.address, t.count, t.name))
        bits = table in BIT_TABLES
        limit = source.max_bits if bits else source.max_registers
        gap = source.max_gap * 16 if bits else source.max_gap
        start, end, members = -1, -1, list[ModbusTag]()
        for tag in tags:
            t_end = tag.address + tag.count
            if merge and members and tag.address - end <= gap and max(end, t_end) - start <= limit:
                end = max(end, t_end)
                members.append(tag)
                continue
            if members:
                out.append(Request(unit, table, start, end - start, tuple(members)))
            start, end, members = tag.address, t_end, [tag]
        if members:
            out.append(Request(unit, table, start, end - start, tuple(members)))
    return out


# -- the reference codec ------------------------------------------------------------------------


def _swap(word: int) -> int:
    return ((word >> 8) | (word << 8)) & 0xFFFF


def to_bytes(words: Words, byte_order: str) -> bytes:
    """Registers as the device sent them -> the value's bytes, big-endian (``ABCD...``)."""
    ws = [int(w) for w in words]
    if byte_order in ("CDAB", "DCBA"):
        ws.reverse()
    if byte_order in ("BADC", "DCBA"):
        ws = [_swap(w) for w in ws]
    return b"".join(w.to_bytes(2, "big") for w in ws)


def to_words(data: bytes, byte_order: str) -> list[int]:
    """The inverse of ``to_bytes``: big-endian value bytes -> registers in the device's order."""
    if len(data) % 2:
        data += b"\0"
    ws = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if byte_order in ("BADC", "DCBA"):
        ws = [_swap(w) for w in ws]
    if byte_order in ("CDAB", "DCBA"):
        ws.reverse()
    return ws


def _parse_text(data: bytes) -> float:
    text = data.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
    try:
        return float(text)
    except ValueError:
        return math.nan


def raw_value(words: Words, tag: ModbusTag) -> float:
    """The tag's value before scale and offset, from exactly its ``tag.count`` registers or bits."""
    if len(words) != tag.count:
        raise ValueError(f"{tag.name}: {tag.type} needs {tag.count} registers, got {len(words)}")
    if tag.type == "bool":
        return 1.0 if words[0] else 0.0
    if tag.type == "bit":
        assert tag.bit is not None
        return float((int(words[0]) >> tag.bit) & 1)
    data = to_bytes(words, tag.byte_order)
    if tag.type == "string":
        assert tag.length is not None
        return _parse_text(data[: tag.length])
    return float(struct.unpack(">" + _STRUCT[tag.type], data)[0])


_INTEGER_TYPES = frozenset({"bool", "bit", "int16", "uint16", "int32", "uint32", "int64"})
_EXACT = float(2**53)  # beyond it a double has no fractional digits left to correct


def _places(x: float) -> int:
    """Digits after the point of ``x`` as Python writes it (``repr``): ``0.1`` -> 1, ``1e-05`` -> 5."""
    exponent = Decimal(repr(x)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def decimals(tag: ModbusTag) -> int | None:
    """Decimals the tag's scaled value is rounded to (module docstring), None when not rounded."""
    if tag.type not in _INTEGER_TYPES or (tag.scale == 1 and tag.offset == 0):
        return None
    return max(_places(tag.scale), _places(tag.offset))


def decode(words: Words, tag: ModbusTag) -> float:
    """One tag's engineering value from its own registers (``words[0]`` at ``tag.address``)."""
    value = raw_value(words, tag) * tag.scale + tag.offset
    d = decimals(tag)
    if d is None:
        return value
    power = 10.0**d
    shifted = value * power
    return float(np.rint(shifted)) / power if abs(shifted) < _EXACT else value


def encode(value: float | str, tag: ModbusTag) -> list[int]:
    """Registers (bits as 0/1 on coils and discrete inputs) that ``decode`` reads back as ``value``.

    Integer types round ``(value - offset) / scale`` and refuse what does not fit; ``bit`` gives
    a register with only that bit set (or 0); strings take a number or text, NUL-padded.
    """
    if tag.type == "string":
        assert tag.length is not None
        text = value if isinstance(value, str) else repr(float(value))
        data = text.encode("ascii")
        if len(data) > tag.length:
            raise ValueError(f"{tag.name}: {text!r} is longer than {tag.length} bytes")
        return to_words(data.ljust(2 * tag.count, b"\0"), tag.byte_order)
    if isinstance(value, str):
        raise TypeError(f"{tag.name}: a {tag.type} holds a number, not {value!r}")
    exact = isinstance(value, int) and tag.scale == 1 and tag.offset == 0  # int64 beyond 2**53
    raw = value if exact else (value - tag.offset) / tag.scale
    if tag.type == "bool":
        return [1 if raw else 0]
    if tag.type == "bit":
        assert tag.bit is not None
        return [(1 << tag.bit) if raw else 0]
    fmt = ">" + _STRUCT[tag.type]
    try:
        data = struct.pack(fmt, raw if tag.type.startswith("float") else round(raw))
    except (struct.error, OverflowError) as e:
        raise ValueError(f"{tag.name}: {value!r} does not fit a {tag.type}: {e}") from None
    return to_words(data, tag.byte_order)


# -- the vectorised decoder ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Tags of one request sharing a numeric type and byte order."""

    rows: npt.NDArray[np.intp]  # positions in Request.tags
    index: npt.NDArray[np.intp]  # (n, words): offsets into the response, already in value order
    dtype: str  # big-endian numpy dtype of the reassembled value
    swap: bool  # swap the bytes inside each register first


@dataclass(frozen=True)
class RequestDecoder:
    """Decodes every tag of one ``Request`` from its response in a few numpy operations."""

    request: Request
    _groups: list[_Group] = field(init=False, repr=False)
    _bits: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]] = field(
        init=False, repr=False
    )  # rows, offsets, bit positions (0 for coils)
    _strings: list[tuple[int, int, ModbusTag]] = field(init=False, repr=False)
    _scale: npt.NDArray[np.float64] = field(init=False, repr=False)
    _offset: npt.NDArray[np.float64] = field(init=False, repr=False)
    _rounded: tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] = field(
        init=False, repr=False
    )  # rows rounded to decimals, and 10**decimals of each

    def __post_init__(self) -> None:
        req = self.request
        numeric: dict[tuple[str, str], list[int]] = {}
        bit_rows: list[int] = []
        strings: list[tuple[int, int, ModbusTag]] = []
        for row, tag in enumerate(req.tags):
            if tag.type in ("bool", "bit"):
                bit_rows.append(row)
            elif tag.type == "string":
                strings.append((row, tag.address - req.address, tag))
            else:
                numeric.setdefault((tag.type, tag.byte_order), []).append(row)
        groups = []
        for (type_, order), rows in sorted(numeric.items()):
            n = req.tags[rows[0]].count
            cols = np.arange(n)
            if order in ("CDAB", "DCBA"):
                cols = cols[::-1]
            starts = np.array([req.tags[r].address - req.address for r in rows], dtype=np.intp)
            groups.append(
                _Group(
                    np.array(rows, dtype=np.intp),
                    starts[:, None] + cols[None, :],
                    _NUMPY[type_],
                    order in ("BADC", "DCBA"),
                )
            )
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(
            self,
            "_bits",
            (
                np.array(bit_rows, dtype=np.intp),
                np.array([req.tags[r].address - req.address for r in bit_rows], dtype=np.intp),
                np.array([req.tags[r].bit or 0 for r in bit_rows], dtype=np.intp),
            ),
        )
        object.__setattr__(self, "_strings", strings)
        object.__setattr__(self, "_scale", np.array([t.scale for t in req.tags], dtype=np.float64))
        object.__setattr__(self, "_offset", np.array([t.offset for t in req.tags], dtype=np.float64))
        places = [(row, d) for row, t in enumerate(req.tags) if (d := decimals(t)) is not None]
        object.__setattr__(
            self,
            "_rounded",
            (
                np.array([row for row, _ in places], dtype=np.intp),
                np.array([10.0**d for _, d in places], dtype=np.float64),
            ),
        )

    def decode(
        self, response: Sequence[int] | Sequence[bool] | npt.NDArray[np.uint16]
    ) -> npt.NDArray[np.float64]:
        """Values of ``request.tags`` in order, from the registers (or bits) of the response."""
        if len(response) < self.request.count:
            raise ValueError(f"{self.request.describe()}: response holds only {len(response)}")
        words = np.asarray(response[: self.request.count], dtype=np.uint16)
        out = np.empty(len(self.request.tags), dtype=np.float64)
        for g in self._groups:
            w: npt.NDArray[np.uint16] = words[g.index]
            if g.swap:
                w = ((w >> 8) | (w << 8)).astype(np.uint16)
            out[g.rows] = w.astype(">u2").view(g.dtype)[:, 0]
        rows, offsets, shifts = self._bits
        if len(rows):
            out[rows] = (words[offsets] >> shifts) & 1
        for row, start, tag in self._strings:
            out[row] = raw_value(words[start : start + tag.count], tag)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf patterns are values too
            scaled: npt.NDArray[np.float64] = out * self._scale + self._offset
        rows, power = self._rounded
        if len(rows):
            shifted = scaled[rows] * power
            rounded = np.rint(shifted)
            rounded /= power
            huge = np.abs(shifted) >= _EXACT  # no decimals left to correct: keep as computed
            if huge.any():
                rounded[huge] = scaled[rows][huge]
            scaled[rows] = rounded
        return scaled
