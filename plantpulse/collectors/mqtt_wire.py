"""The MQTT read path at wire speed: packets cut from large socket reads, PUBLISH parsed here,
every other packet handed to paho's own handler, PUBACKs written in one piece.

Why not paho's ``loop_read``: it reads each packet with three or more ``recv`` calls (command
byte, each length byte, body), then builds a dict, an ``MQTTMessage``, a log record and a
callback under two locks per message, about 15 µs each on this machine: at 50k messages/s that
is the whole budget before a single value is decoded. Here one ``recv`` takes up to 256 KiB
(thousands of messages), a PUBLISH costs a few slices and integer reads, and its topic and
payload go straight to the decoder; the PUBACKs of a delivered batch leave as one write.

paho keeps everything else: CONNECT and TLS (in the connect thread), CONNACK, SUBACK,
PINGRESP, PUBACK for what we publish (Sparkplug STATE, rebirth commands), DISCONNECT, and an
MQTT 5 PUBLISH that carries properties (topic aliases, ...). This is the one module that
touches paho internals: ``_in_packet``, ``_packet_handle``, ``_loop_rc_handle``,
``_packet_queue`` and ``_last_bytes_received`` (paho-mqtt is pinned ``>=2.1,<3``; every one of
them runs in the collector tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from paho.mqtt.enums import MQTTErrorCode

__all__ = [
    "PUBACK",
    "PacketReader",
    "ProtocolError",
    "connection_lost",
    "hand_to_paho",
    "queue_pubacks",
    "received_bytes",
]

PUBLISH = 0x30
PUBACK = 0x40
_MAX_SHIFT = 21  # the remaining length is at most four bytes

OnPublish = Callable[[bytes, bytes, int, int, int], None]
"""``(topic bytes, payload, qos, packet id, retain)``."""
OnOther = Callable[[int, bytes], bool]
"""``(fixed header byte, body) -> keep reading``: every packet that is not a plain PUBLISH."""


class ProtocolError(Exception):
    """The broker sent bytes that are not MQTT (the connection cannot continue)."""


class PacketReader:
    """Cuts complete packets out of a byte stream; keeps an incomplete tail for the next read."""

    def __init__(self, *, v5: bool) -> None:
        self.v5 = v5
        self._tail = b""

    def reset(self) -> None:
        self._tail = b""

    def feed(self, data: bytes, on_publish: OnPublish, on_other: OnOther) -> bool:
        """Dispatch every complete packet of ``tail + data``; False once ``on_other`` said stop."""
        buf = self._tail + data if self._tail else data
        n = len(buf)
        pos = 0
        v5 = self.v5
        while n - pos >= 2:
            header = buf[pos]
            i = pos + 1
            length = 0
            shift = 0
            while True:
                if i >= n:
                    self._tail = buf[pos:]
                    return True
                b = buf[i]
                i += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > _MAX_SHIFT:
                    raise ProtocolError("remaining length longer than four bytes")
            end = i + length
            if end > n:
                break
            if header & 0xF0 == PUBLISH:
                qos = (header >> 1) & 3
                t_end = i + 2 + ((buf[i] << 8) | buf[i + 1]) if length >= 2 else end + 1
                p = t_end + 2 if qos else t_end
                if p > end or qos == 3:
                    raise ProtocolError("malformed PUBLISH")
                if v5:
                    if p < end and buf[p] == 0:
                        p += 1  # no properties
                    else:
                        pos = end
                        if not on_other(header, buf[i:end]):
                            self._tail = buf[pos:]
                            return False
                        continue
                mid = (buf[t_end] << 8) | buf[t_end + 1] if qos else 0
                on_publish(buf[i + 2 : t_end], buf[p:end], qos, mid, header & 1)
            elif not on_other(header, buf[i:end]):
                self._tail = buf[end:]
                return False
            pos = end
        self._tail = buf[pos:]
        return True


def hand_to_paho(client: Any, header: int, body: bytes) -> MQTTErrorCode:
    """Let paho handle one packet exactly as its own reader would have; on an error paho closes
    the socket and calls ``on_disconnect`` (through ``_loop_rc_handle``)."""
    client._in_packet = {
        "command": header,
        "have_remaining": 1,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(body),
        "packet": bytearray(body),
        "to_process": 0,
        "pos": 0,
    }
    try:
        rc = client._packet_handle()
    except Exception:  # paho's MalformedPacket, struct and decode errors: a protocol error
        rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
    client._in_packet = {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }
    if rc:
        client._loop_rc_handle(rc)
    return MQTTErrorCode(rc)


def received_bytes(client: Any) -> None:
    """Tell paho's keep-alive that the broker is alive (its reader does this per packet)."""
    client._last_bytes_received = time.monotonic()


def connection_lost(client: Any) -> None:
    """Close the socket and run ``on_disconnect`` the way paho does for a failed read."""
    client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)


def queue_pubacks(client: Any, mids: Sequence[int]) -> None:
    """One write for the PUBACKs of a delivered batch (MQTT 3.1.1 and 5: ``40 02 <id>``, the
    reason code omitted for success)."""
    if not mids:
        return
    words = np.empty(2 * len(mids), dtype=">u2")
    words[0::2] = (PUBACK << 8) | 2
    words[1::2] = mids
    client._packet_queue(PUBACK, words.tobytes(), 0, 0)
