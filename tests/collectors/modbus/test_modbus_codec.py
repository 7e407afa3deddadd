"""Register decoding: known vectors, property-based round trips, and the vectorised decoder
held to the per-tag reference (and to pymodbus' own converter where it has the same order)."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from plantpulse.collectors.modbus_config import ModbusTag
from plantpulse.collectors.modbus_plan import Request, RequestDecoder, decode, encode

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**53), 2**53),  # exact as a float
}


def tag(type_: str, order: str = "ABCD", **kw: Any) -> ModbusTag:
    return ModbusTag.model_validate({"name": "t", "address": 0, "type": type_, "byte_order": order, **kw})


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ("ABCD", [0x4120, 0x0000]),
        ("CDAB", [0x0000, 0x4120]),
        ("BADC", [0x2041, 0x0000]),
        ("DCBA", [0x0000, 0x2041]),
    ],
)
def test_float32_ten_in_each_byte_order(order: str, words: list[int]) -> None:
    assert decode(words, tag("float32", order)) == 10.0
    assert encode(10.0, tag("float32", order)) == words


def test_64_bit_orders_follow_telegraf_names() -> None:
    # 0x0102030405060708: ABCD=ABCDEFGH, CDAB=GHEFCDAB, BADC=BADCFEHG, DCBA=HGFEDCBA
    value = 0x0102030405060708
    assert encode(value, tag("int64", "ABCD")) == [0x0102, 0x0304, 0x0506, 0x0708]
    assert encode(value, tag("int64", "CDAB")) == [0x0708, 0x0506, 0x0304, 0x0102]
    assert encode(value, tag("int64", "BADC")) == [0x0201, 0x0403, 0x0605, 0x0807]
    assert encode(value, tag("int64", "DCBA")) == [0x0807, 0x0605, 0x0403, 0x0201]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), type_=st.sampled_from(sorted(RANGES)), order=st.sampled_from(ORDERS))
def test_integers_round_trip(data: st.DataObject, type_: str, order: str) -> None:
    lo, hi = RANGES[type_]
    value = data.draw(st.integers(lo, hi))
    t = tag(type_, order)
    assert decode(encode(value, t), t) == value


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False, width=32), order=st.sampled_from(ORDERS), wide=st.booleans())
def test_floats_round_trip(value: float, order: str, wide: bool) -> None:
    t = tag("float64" if wide else "float32", order)
    assert decode(encode(value, t), t) == value


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "float32", "float64"]),
    order=st.sampled_from(ORDERS),
    data=st.data(),
)
def test_any_registers_decode_then_encode_back(type_: str, order: str, data: st.DataObject) -> None:
    t = tag(type_, order)
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=t.count, max_size=t.count))
    value = decode(words, t)
    if math.isnan(value) or (type_ == "int64" and abs(value) > 2**53):
        return  # NaN payloads and int64 beyond a double's precision do not come back bit for bit
    assert encode(value, t) == words


@settings(max_examples=200, deadline=None)
@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_bit_of_a_register(word: int, bit: int) -> None:
    t = tag("bit", bit=bit)
    assert decode([word], t) == float((word >> bit) & 1)
    assert decode(encode(1.0, t), t) == 1.0
    assert decode(encode(0.0, t), t) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    value=st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)),
    order=st.sampled_from(["ABCD", "BADC"]),
    length=st.integers(12, 30),
)
def test_numeric_strings_round_trip(value: float, order: str, length: int) -> None:
    t = tag("string", order, length=length)
    assert decode(encode(value, t), t) == value


@settings(max_examples=200, deadline=None)
@given(
    raw=st.integers(-(2**15), 2**15 - 1),
    scale=st.sampled_from([0.1, 0.01, 2.0, -1.0, 0.5]),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
)
def test_scale_and_offset_invert(raw: int, scale: float, offset: float) -> None:
    t = tag("int16", scale=scale, offset=offset)
    value = raw * scale + offset
    assert decode(encode(value, t), t) == pytest.approx(value, rel=1e-12, abs=1e-9)
    assert encode(value, t) == encode(raw * scale + offset, t)


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(["int16", "uint16", "int32", "uint32", "int64"]),
    raw=st.integers(-(2**31), 2**31 - 1),
    scale=st.sampled_from([0.1, 0.01, 0.001, 0.05, 0.25, 1e-05, 2.5, 10.0, -0.1]),
    offset=st.sampled_from([0.0, -40.0, 273.15, 0.5]),
)
def test_scaled_integers_are_the_exact_decimal(type_: str, raw: int, scale: float, offset: float) -> None:
    """``scale: 0.1`` stores 1.2, not 1.2000000000000002: the double nearest the exact
    decimal ``raw * scale + offset``, in the reference and in the vectorised decoder alike."""
    lo, hi = RANGES[type_]
    raw = min(max(raw, lo), hi)
    t = tag(type_, scale=scale, offset=offset)
    exact = float(Decimal(raw) * Decimal(repr(scale)) + Decimal(repr(offset)))
    words = encode(raw, tag(type_))
    assert decode(words, t) == exact
    assert RequestDecoder(Request(1, "holding", 0, t.count, (t,))).decode(words).tolist() == [exact]


@pytest.mark.parametrize(
    ("raw", "scale", "offset", "stored"),
    [(12, 0.1, 0.0, 1.2), (3, 0.1, 0.0, 0.3), (13, 1e-05, 0.0, 0.00013), (2, 0.1, 273.15, 273.35)],
)
def test_scale_examples_plain_arithmetic_gets_wrong(
    raw: int, scale: float, offset: float, stored: float
) -> None:
    assert raw * scale + offset != stored
    assert decode([raw], tag("uint16", scale=scale, offset=offset)) == stored


def test_floats_are_not_rounded_to_the_scale() -> None:
    t = tag("float32", scale=0.1)
    words = encode(1.2345678, tag("float32"))
    assert decode(words, t) == struct.unpack(">f", struct.pack(">f", 1.2345678))[0] * 0.1


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode(70000, tag("uint16"))
    with pytest.raises(ValueError, match="longer than"):
        encode("123456", tag("string", length=4))


def test_text_that_is_not_a_number_is_nan() -> None:
    assert math.isnan(decode([0x4142, 0x4300], tag("string", length=4)))


@pytest.mark.parametrize("type_", ["int32", "uint32", "float32", "int64", "float64"])
@pytest.mark.parametrize(("order", "word_order"), [("ABCD", "big"), ("CDAB", "little")])
def test_agrees_with_pymodbus_converter(type_: str, order: str, word_order: Any) -> None:
    dt = getattr(ModbusClientMixin.DATATYPE, type_.upper())
    for value in (0, 1, 123, 65537) if "int" in type_ else (0.0, -1.5, 3.25e5):
        words = ModbusClientMixin.convert_to_registers(value, dt, word_order=word_order)
        assert decode(words, tag(type_, order)) == value
        assert encode(value, tag(type_, order)) == words


# -- the vectorised decoder against the reference ------------------------------------------------

_TYPES = ["bit", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "string"]


@st.composite
def request_and_words(draw: st.DrawFn) -> tuple[Request, list[int]]:
    n = draw(st.integers(1, 12))
    tags = []
    for i in range(n):
        type_ = draw(st.sampled_from(_TYPES))
        kw: dict[str, Any] = {"name": f"t{i}", "address": draw(st.integers(0, 40)), "type": type_}
        if type_ == "bit":
            kw["bit"] = draw(st.integers(0, 15))
        elif type_ == "string":
            kw["length"] = draw(st.integers(1, 8))
            kw["byte_order"] = draw(st.sampled_from(["ABCD", "BADC"]))
        else:
            kw["byte_order"] = draw(st.sampled_from(ORDERS))
        kw["scale"] = draw(st.sampled_from([1.0, 0.1, -2.0]))
        tags.append(ModbusTag.model_validate(kw))
    start = min(t.address for t in tags)
    end = max(t.address + t.count for t in tags)
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=end - start, max_size=end - start))
    return Request(1, "holding", start, end - start, tuple(tags)), words


@settings(max_examples=300, deadline=None)
@given(case=request_and_words())
def test_vectorised_decoder_matches_reference(case: tuple[Request, list[int]]) -> None:
    req, words = case
    got = RequestDecoder(req).decode(np.array(words, dtype=np.uint16))
    for t, v in zip(req.tags, got, strict=True):
        off = t.address - req.address
        want = decode(words[off : off + t.count], t)
        assert (math.isnan(v) and math.isnan(want)) or v == want, (t, v, want)


def test_vectorised_decoder_reads_coils() -> None:
    tags = tuple(
        ModbusTag.model_validate({"name": f"c{i}", "table": "coil", "address": i}) for i in (0, 3, 9)
    )
    req = Request(1, "coil", 0, 10, tags)
    bits = [
        True,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
    ]
    assert RequestDecoder(req).decode(bits).tolist() == [1.0, 1.0, 0.0]


def test_short_response_is_refused() -> None:
    req = Request(1, "holding", 0, 2, (tag("float32"),))
    with pytest.raises(ValueError, match="only 1"):
        RequestDecoder(req).decode([1])


def test_struct_reference_sanity() -> None:
    assert struct.pack(">f", 10.0) == bytes([0x41, 0x20, 0, 0])
