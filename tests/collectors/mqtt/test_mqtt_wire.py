"""The wire reader: packets cut from arbitrary reads, PUBLISH parsed, the rest handed on (pure)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantpulse.collectors.mqtt_wire import PacketReader, ProtocolError


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(
    topic: bytes, payload: bytes, *, qos: int = 0, mid: int = 0, retain: int = 0, props: bytes | None = None
) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if props is not None:
        body += _length(len(props)) + props
    body += payload
    return bytes([0x30 | (qos << 1) | retain]) + _length(len(body)) + body


def read(
    reader: PacketReader, chunks: list[bytes]
) -> tuple[list[tuple[bytes, bytes, int, int, int]], list[tuple[int, bytes]]]:
    pubs: list[tuple[bytes, bytes, int, int, int]] = []
    others: list[tuple[int, bytes]] = []
    for chunk in chunks:
        reader.feed(chunk, lambda *a: pubs.append(a), lambda h, b: others.append((h, b)) or True)
    return pubs, others


STREAM = [
    publish(b"a/b", b'{"v": 1}', qos=1, mid=7),
    bytes([0xD0, 0x00]),  # PINGRESP
    publish(b"x", b"", retain=1),
    publish("焊机/电流".encode(), b"9" * 300, qos=1, mid=65535),  # a two-byte remaining length
    bytes([0x90, 0x03, 0x00, 0x01, 0x01]),  # SUBACK
]
EXPECTED_PUBS = [
    (b"a/b", b'{"v": 1}', 1, 7, 0),
    (b"x", b"", 0, 0, 1),
    ("焊机/电流".encode(), b"9" * 300, 1, 65535, 0),
]
EXPECTED_OTHERS = [(0xD0, b""), (0x90, b"\x00\x01\x01")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(b"".join(STREAM))), max_size=12))
def test_packets_split_anywhere_across_reads(cuts: list[int]) -> None:
    data = b"".join(STREAM)
    bounds = [0, *sorted(cuts), len(data)]
    chunks = [data[a:b] for a, b in pairwise(bounds)]
    pubs, others = read(PacketReader(v5=False), chunks)
    assert pubs == EXPECTED_PUBS
    assert others == EXPECTED_OTHERS


def test_mqtt5_publish_without_properties_is_ours_with_properties_goes_to_paho() -> None:
    plain = publish(b"t", b"1", qos=1, mid=3, props=b"")
    alias = publish(b"t", b"2", qos=1, mid=4, props=b"\x23\x00\x05")  # topic alias 5
    pubs, others = read(PacketReader(v5=True), [plain + alias])
    assert pubs == [(b"t", b"1", 1, 3, 0)]
    assert others == [(alias[0], alias[2:])]


def test_other_packet_may_stop_the_reader() -> None:
    reader = PacketReader(v5=False)
    seen: list[int] = []
    going = reader.feed(
        bytes([0xE0, 0x00]) + publish(b"t", b"1"), lambda *a: seen.append(1), lambda h, b: False
    )
    assert not going and seen == []  # DISCONNECT: paho closed the link; the rest is not read


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),  # five length bytes
        bytes([0x32, 0x03, 0x00, 0x05, 0x61]),  # topic longer than the packet
        bytes([0x36, 0x04, 0x00, 0x01, 0x61, 0x00]),  # QoS 3
        bytes([0x32, 0x03, 0x00, 0x01, 0x61]),  # QoS 1 without a packet id
    ],
)
def test_malformed_publish_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read(PacketReader(v5=False), [data])
