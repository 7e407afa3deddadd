"""MQTT collector (paho-mqtt 2, CallbackAPIVersion.VERSION2): JSON or Sparkplug B payloads.

Choices, and why:

* **No thread: paho on the asyncio loop.** paho's external-loop hooks (``on_socket_open``/
  ``close``/``register_write``/``unregister_write``) map onto ``loop.add_reader``/``add_writer``;
  ``loop_misc`` (keep-alive pings) runs from a ``call_later`` timer. Every paho callback
  therefore runs on the event loop thread, decoding happens right there, and a whole read
  burst becomes ONE batch handed to ``run`` (no per-message cross-thread hop, which is what
  would cost throughput with ``loop_start``). Only the blocking TCP connect and TLS handshake
  run in ``asyncio.to_thread`` (paho has no non-blocking connect); they are bounded by
  ``timeout``.
* **At-least-once, acknowledged once durable.** The client uses ``manual_ack``: a QoS 1
  PUBACK is sent only after ``sink.put`` (and ``put_historical``) returned for the batch
  holding that message (the batch's PUBACKs leave in one write), and the pipeline's sink
  returns only once the samples are in the fsync'd spool. JSON and Sparkplug messages, live and
  historical, take this one path. A process killed at any point therefore loses nothing with a
  persistent session: the broker redelivers what was not acknowledged (duplicates are
  possible, losses are not).
* **Our own read path.** paho connects, subscribes, pings and publishes, but the socket is
  read here (``mqtt_wire``): one ``recv`` of up to 256 KiB, PUBLISH packets parsed in place
  and decoded straight into columns (``mqtt_json``, ``columns``), every other packet handed to
  paho's handler. paho's own reader costs three ``recv`` calls and an ``MQTTMessage`` per
  message, more than decoding the message does. Tools that only listen (``discover mqtt``)
  take the messages undecoded through ``raw=`` and may ``publish`` on the same connection.
* **Columns to the sink boundary, one put for what queued.** A burst becomes one
  ``SampleBatch`` (sorted by time, split live/historical per tag in numpy); bursts that queued
  while the previous ``put`` waited for its fsync are handed on together (up to ``_COALESCE``
  samples), so a fast broker costs one spool append and one fsync per put, not per burst.
  ``_rows`` turns a batch into the ``Sample`` list ``Sink.put`` takes today, the one place to
  change when sinks accept batches.
* **Backpressure.** The handoff between the socket callbacks and ``run`` holds at most
  ``handoff`` batches. When it is full we stop reading the socket (``remove_reader``) until
  ``run`` catches up: TCP then pushes back on the broker, which holds QoS 1 messages for us
  (its in-flight window is full of unacknowledged messages anyway). Nothing is dropped here;
  a stall longer than the keep-alive makes the broker or paho drop the link, the runner
  reconnects and the persistent session redelivers.
* **Persistent session.** A fixed client id with ``clean_session``/``clean_start`` false (MQTT
  5: plus ``session_expiry``), so QoS 1 messages published while we are away wait at the
  broker. Every successful CONNACK (every ``run``) subscribes again, whatever the broker says
  about the session: a broker that lost its state must never leave us silently deaf.
* **Errors.** CONNACK "bad user name or password"/"not authorized"/"banned", a refused
  subscription and TLS certificate failures -> AuthenticationError; everything else
  (refused, unreachable, timeout, connection lost) -> SourceUnavailable. Malformed payloads
  are counted per topic, the last few kept (``status().malformed``), reported through
  ``sink.error`` as ``MalformedPayload`` (one log line per topic and cause), and never stop
  the collector.
* **Sparkplug host application.** With ``sparkplug.host_id`` the will is the retained STATE
  death ``{"online": false, "timestamp": T}`` with T taken when the client (and its CONNECT)
  is made; after the SUBACK the retained birth ``{"online": true, "timestamp": T}`` (the same
  T, Sparkplug 3.0) is the first PUBLISH; a clean stop (cancellation) publishes ``{"online":
  false}`` with the stop time and sends DISCONNECT only once the broker acknowledged it (and
  what arrived meanwhile was delivered). A live (not retained) offline STATE for our own id
  while we are connected (a late will of our previous connection) is answered with the birth
  again. Unread bytes are read away before DISCONNECT: a socket closed with unread data sends
  RST, and the broker may then drop the DISCONNECT and publish the will.
* **Heartbeats.** MQTT carries no server time, so while connected and keeping up, every
  ``heartbeat`` the collector claims ``now - lag``: nothing older is still in flight.
* **History.** Samples older than the newest live sample of their tag (device buffers,
  Sparkplug ``is_historical``) go to the ``historical`` callback when one is given, else to
  the sink's ``put_historical`` (``base.put_historical``: ``put`` for a plain sink). Gap
  markers and the watchdog belong to the runner, the same for every collector kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from plantpulse.collectors import mqtt_wire
from plantpulse.collectors.base import Sink, put_historical
from plantpulse.collectors.columns import Columns, LiveSplit, to_samples
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.mqtt_json import DecodeError, JsonDecoder
from plantpulse.collectors.sparkplug import SparkplugDecoder
from plantpulse.errors import AuthenticationError, SourceError, SourceUnavailable
from plantpulse.samples import Sample, SampleBatch, TagRegistry
from plantpulse.timefmt import NS_PER_MS, NS_PER_S

__all__ = ["MalformedPayload", "MalformedTopic", "MqttCollector", "MqttStatus", "RejectedMessage"]

log = logging.getLogger(__name__)

HistoricalSink = Callable[[Sequence[Sample]], Awaitable[None]]
RawSink = Callable[[bytes, bytes, int], None]
"""``(topic bytes, payload, receive time ns)``: messages taken undecoded (``MqttCollector(raw=)``)."""

_TLS_REFUSAL = re.compile(
    r"\[SSL: (\w*ALERT_(?:CERTIFICATE\w*|UNKNOWN_CA|BAD_CERTIFICATE|ACCESS_DENIED)|\w*CERTIFICATE\w*)\]"
)
"""Socket errors before CONNACK that mean the broker refused our certificate (TLS 1.3 sends
"certificate required" after the client thinks the handshake is done)."""
_AUTH_REASONS = frozenset({134, 135, 138, 140})  # bad user/password, not authorized, banned, bad auth method
_RECV = 256 * 1024  # bytes per recv
_BURST = 1 << 20  # bytes read per readable event at most (fairness with the rest of the loop)
_MAX_TOPICS = 1000  # malformed-payload counters kept per topic; beyond that under "<other>"
_STATE = msgspec.json.Decoder()
_COALESCE = 10_000  # samples handed on in one put at most when bursts queued behind a slow one


class _TrackingContext(ssl.SSLContext):
    """Remembers the last socket it wrapped, so a failed handshake's socket can be closed."""

    last: ssl.SSLSocket | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.last = super().wrap_socket(*args, **kwargs)
        return self.last


class MalformedPayload(SourceError):
    """A message that could not be decoded; counted per topic, never fatal."""

    cause = "malformed"


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """One malformed message kept for inspection (payload cut to 256 bytes)."""

    received_ns: int
    cause: str
    message: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class MalformedTopic:
    count: int
    last: tuple[RejectedMessage, ...]


@dataclass(frozen=True)
class MqttStatus:
    """A read-only snapshot of the collector (the runner's SourceStatus has the generic counters)."""

    connected: bool
    session_present: bool | None
    messages: int
    samples: int
    historical: int
    malformed: Mapping[str, MalformedTopic]
    rebirths_requested: int
    paused: int
    notes: int
    state_births: int = 0
    """Sparkplug host application: STATE births published (one per connection, plus repairs)."""


@dataclass(slots=True)
class _Ring:
    count: int = 0
    last: deque[RejectedMessage] = field(default_factory=lambda: deque(maxlen=5))


@dataclass(slots=True)
class _Batch:
    live: SampleBatch | None
    historical: SampleBatch | None
    acks: list[int]  # packet ids of QoS 1 messages, acknowledged once the sink took the batch

    def __len__(self) -> int:
        return sum(len(b) for b in (self.live, self.historical) if b is not None)


@dataclass(frozen=True, slots=True)
class _Heartbeat:
    ts: int


_Item = _Batch | _Heartbeat | SourceError


class MqttCollector:
    """A StreamingCollector for one broker (``MqttSource``); ``run`` once per connection."""

    def __init__(
        self,
        source: MqttSource,
        *,
        handoff: int = 64,
        keep_malformed: int = 5,
        historical: HistoricalSink | None = None,
        raw: RawSink | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``raw``: every message goes there undecoded instead of into samples (tools that
        listen, such as ``discover mqtt``); QoS 1 messages are still acknowledged."""
        self.source = source
        self.name = source.name
        self.address = source.address
        self._handoff = max(1, handoff)
        self._keep = max(1, keep_malformed)
        self._historical_sink = historical
        self._raw = raw
        self._clock = clock
        self.tags = TagRegistry()
        """The collector's tag ids (its batches' ``tags``); a sink remaps them to its own."""
        self._json = JsonDecoder(source.subscriptions, self.tags) if source.format == "json" else None
        self._sparkplug = SparkplugDecoder(source.sparkplug) if source.sparkplug is not None else None
        self._state_topic = source.state_topic
        self._state_ts = 0  # ms; the will's and the birth's timestamp for the current connection
        self._state_born = False
        self._state_births = 0
        self._history = LiveSplit()
        self._reader = mqtt_wire.PacketReader(v5=source.protocol == "5")
        # per connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._client: mqtt.Client | None = None
        self._sock: Any = None
        self._fd = -1  # registered with the loop by number: still removable once paho closed it
        self._items: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()
        """Set once the broker acknowledged every subscription of the current connection."""
        self._connack: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused_now = False
        self._closing = False
        self._connected = False
        self._session_present: bool | None = None
        self._socket_error: str | None = None
        self._tls_ctx: _TrackingContext | None = None
        self._pending = Columns(self.tags)
        self._pending_hist = Columns(self.tags)  # flagged historical by the sender (Sparkplug)
        self._pending_acks: list[int] = []
        self._now = 0  # receive time of the bytes being dispatched
        self._last_heartbeat = 0
        self._sink: Sink | None = None
        # counters (status)
        self._messages = 0
        self._samples = 0
        self._hist_count = 0
        self._malformed: dict[str, _Ring] = {}
        self._rebirths = 0
        self._paused = 0
        self._notes = 0

    # -- read-only status -------------------------------------------------------------------------

    def status(self) -> MqttStatus:
        return MqttStatus(
            connected=self._connected,
            session_present=self._session_present,
            messages=self._messages,
            samples=self._samples,
            historical=self._hist_count,
            malformed=MappingProxyType(
                {t: MalformedTopic(r.count, tuple(r.last)) for t, r in self._malformed.items()}
            ),
            rebirths_requested=self._rebirths,
            paused=self._paused,
            notes=self._notes,
            state_births=self._state_births,
        )

    def subscriptions(self) -> list[tuple[str, int]]:
        """Topic filters and QoS, as subscribed after every CONNACK."""
        src = self.source
        if self._sparkplug is not None:
            own = [(self._state_topic, 1)] if self._state_topic is not None else []
            return own + [(f, src.qos) for f in self._sparkplug.subscriptions()]
        seen: dict[str, int] = {}
        for s in src.subscriptions:
            seen[s.topic] = max(seen.get(s.topic, 0), src.qos if s.qos is None else s.qos)
        return list(seen.items())

    def publish(self, topic: str, payload: bytes, *, qos: int = 0) -> bool:
        """Publish on the current connection (a tool's request, such as discover's Sparkplug
        rebirth command); False when not connected."""
        client = self._client
        if client is None or not self._connected:
            return False
        return client.publish(topic, payload, qos=qos).rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- StreamingCollector -----------------------------------------------------------------------

    async def run(self, sink: Sink) -> None:
        """Connect, subscribe and deliver until cancelled; SourceError when the link is lost."""
        self._sink = sink
        loop = asyncio.get_running_loop()
        self._loop, self._thread = loop, threading.get_ident()
        self._items.clear()
        self._wake = asyncio.Event()
        self._closing = False
        self._reader.reset()
        self._state_born = False
        client = self._make_client()
        self._client = client
        try:
            await self._connect(client, loop)
            self._start_timer()
            await self._deliver(sink, client)
        except asyncio.CancelledError:
            if self._state_topic is not None and self._state_born and client.socket() is not None:
                await self._offline(sink, client)
            raise
        finally:
            self._teardown(client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._teardown(client)

    # -- connection -------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        src = self.source
        v5 = src.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=src.effective_client_id,
            clean_session=None if v5 else not src.persistent,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,
        )
        client.connect_timeout = src.timeout / NS_PER_S
        client.max_inflight_messages_set(1000)
        if src.username is not None:
            client.username_pw_set(src.username, src.password.get_secret_value() if src.password else None)
        if src.tls is not None:
            self._tls_ctx = self._tls_context()
            client.tls_set_context(self._tls_ctx)
            client.tls_insecure_set(src.tls.insecure)
        if self._state_topic is not None:
            # Sparkplug 3.0: the death certificate carries the time of this CONNECT; the birth repeats it
            self._state_ts = self._clock() // NS_PER_MS
            client.will_set(self._state_topic, _state(online=False, ts=self._state_ts), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_log = self._on_log  # until CONNACK only: paho formats a line per packet
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    def _tls_context(self) -> _TrackingContext:
        tls = self.source.tls
        assert tls is not None
        try:
            ctx = _TrackingContext(ssl.PROTOCOL_TLS_CLIENT)
            if tls.ca is not None:
                ctx.load_verify_locations(cafile=str(tls.ca))
            else:
                ctx.load_default_certs()
            if tls.cert is not None and tls.key is not None:
                ctx.load_cert_chain(str(tls.cert), str(tls.key))
        except (OSError, ssl.SSLError) as e:
            raise AuthenticationError(self.name, self.address, f"TLS files: {e}") from None
        if tls.insecure:
            ctx.check_hostname = False
        return ctx

    async def _connect(self, client: mqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
        src = self.source
        kwargs: dict[str, Any] = {}
        if src.protocol == "5":
            make: Any = Properties  # paho leaves its constructor unannotated
            props = make(PacketTypes.CONNECT)
            if src.persistent:
                props.SessionExpiryInterval = min(src.session_expiry // NS_PER_S, 0xFFFFFFFF)
            kwargs = {"clean_start": not src.persistent, "properties": props}
        client.connect_async(src.host, src.port, max(1, round(src.keepalive / NS_PER_S)), **kwargs)
        self._connack = loop.create_future()
        self._socket_error = None
        try:
            try:
                await asyncio.to_thread(client.reconnect)
            except BaseException:
                self._close_orphan(client)
                raise
        except ssl.SSLCertVerificationError as e:
            raise AuthenticationError(
                self.name, self.address, f"broker certificate refused: {e.verify_message}"
            ) from None
        except ssl.SSLError as e:
            raise AuthenticationError(
                self.name, self.address, f"TLS handshake failed: {e.reason or e}"
            ) from None
        except ConnectionRefusedError:
            raise self._unavailable("connection refused") from None
        except TimeoutError:
            raise self._unavailable(f"connect timed out after {src.timeout / NS_PER_S:g}s") from None
        except OSError as e:
            raise self._unavailable(str(e) or type(e).__name__) from None
        sock = client.socket()
        if sock is None:
            raise self._unavailable("socket closed during connect")
        self._sock, self._fd = sock, sock.fileno()
        loop.add_reader(self._fd, self._on_readable)
        if client.want_write():
            loop.add_writer(self._fd, self._on_writable)
        try:
            async with asyncio.timeout(src.timeout / NS_PER_S):
                await self._connack
        except TimeoutError:
            raise self._unavailable("no CONNACK from the broker") from None

    def _close_orphan(self, client: mqtt.Client) -> None:
        """paho drops (unclosed) the TLS socket whose handshake failed; close it here."""
        ctx = self._tls_ctx
        if ctx is None:
            return
        sock, ctx.last = ctx.last, None
        if sock is not None and client.socket() is not sock:
            with contextlib.suppress(OSError):
                sock.close()

    def _teardown(self, client: mqtt.Client) -> None:
        self._closing = True
        self.subscribed.clear()
        self._connected = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock, self._sock = self._sock, None
        fd, self._fd = self._fd, -1
        if sock is not None and client.socket() is sock:
            with contextlib.suppress(OSError, ValueError):
                _discard_unread(sock)
                if self._state_topic is not None and self._state_born:
                    # Sparkplug 3.0: a clean stop publishes the death itself (the will is dropped)
                    offline = _state(online=False, ts=self._clock() // NS_PER_MS)
                    client.publish(self._state_topic, offline, qos=1, retain=True)
                client.disconnect()  # queues DISCONNECT: a clean goodbye keeps the session, drops the will
                client.loop_write()
        if fd >= 0 and self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._client is client:
            self._client = None

    def _unavailable(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(self.name, self.address, why)

    # -- paho callbacks (event loop thread; socket callbacks also from the connect thread) -------

    def _in_loop(self) -> bool:
        return threading.get_ident() == self._thread

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        """Registered by ``_connect`` once the blocking connect returned (it runs in a thread)."""

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None and self._in_loop() and sock is self._sock:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._sock, self._fd = None, -1

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None and self._in_loop() and sock is self._sock:
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None and self._in_loop() and sock is self._sock:
            self._loop.remove_writer(self._fd)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and buf.startswith("failed to receive on socket"):
            self._socket_error = buf.partition(": ")[2]

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        client.on_log = None
        fut = self._connack
        if reason.is_failure:
            err: SourceError
            if reason.value in _AUTH_REASONS:
                err = AuthenticationError(self.name, self.address, f"refused: {reason}")
            else:
                err = self._unavailable(f"refused: {reason}")
            if fut is not None and not fut.done():
                fut.set_exception(err)
            return
        self._connected = True
        self._session_present = bool(getattr(flags, "session_present", False))
        rc, _ = client.subscribe(self.subscriptions())
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._push(self._unavailable(f"subscribe failed: {mqtt.error_string(rc)}"))
        self._last_heartbeat = self._clock()
        if fut is not None and not fut.done():
            fut.set_result(True)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        refused = [
            topic for (topic, _), r in zip(self.subscriptions(), reasons, strict=False) if r.is_failure
        ]
        if refused:
            self._push(
                AuthenticationError(self.name, self.address, f"subscription refused: {', '.join(refused)}")
            )
            return
        if self._state_topic is not None:
            self._birth(client)  # subscribed to our own STATE and the group first, as Sparkplug 3.0 says
        self.subscribed.set()

    def _birth(self, client: mqtt.Client) -> None:
        assert self._state_topic is not None
        client.publish(self._state_topic, _state(online=True, ts=self._state_ts), qos=1, retain=True)
        self._state_born = True
        self._state_births += 1

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self._connected = False
        if self._closing:
            return
        why = f"connection lost: {reason}" if reason.value else "connection closed by the broker"
        err: SourceError = self._unavailable(why)
        fut = self._connack
        refused = _TLS_REFUSAL.search(self._socket_error or "")
        if fut is not None and not fut.done() and refused is not None:
            why = f"TLS refused by the broker: {refused.group(1)}"
            err = AuthenticationError(self.name, self.address, why)
        if fut is not None and not fut.done():
            fut.set_exception(err)
        else:
            self._flush()
            self._push(err)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """paho's own path: an MQTT 5 PUBLISH with properties (``mqtt_wire`` hands it over)."""
        raw_topic: bytes = msg._topic  # the undecoded topic: invalid UTF-8 is a malformed message too
        self._now = self._clock()
        self._receive(raw_topic, bytes(msg.payload), msg.qos, msg.mid, int(msg.retain))

    def _receive(self, topic: bytes, payload: bytes, qos: int, mid: int, retain: int) -> None:
        """One PUBLISH (received at ``_now``): decoded into the pending columns (or handed to
        ``raw``), or counted as malformed."""
        self._messages += 1
        received = self._now
        try:
            if self._raw is not None:
                self._raw(topic, payload, received)
            elif self._json is not None:
                self._json.decode_into(self._pending, topic, payload, received)
            else:
                self._sparkplug_message(topic, payload, received, retain)
        except DecodeError as e:
            self._reject(topic.decode("utf-8", "replace"), payload, received, e)
        if qos:
            self._pending_acks.append(mid)  # QoS 2 never arrives: we subscribe at QoS 1 at most

    def _sparkplug_message(self, raw_topic: bytes, payload: bytes, received: int, retain: int) -> None:
        assert self._sparkplug is not None
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("topic", "topic is not UTF-8") from None
        if topic == self._state_topic:
            self._own_state(payload, retain)
            return
        out = self._sparkplug.decode(topic, payload, received)
        self._pending.extend_samples(out.samples)
        self._pending_hist.extend_samples(out.historical)
        self._notes += len(out.notes)
        for note in out.notes:
            log.debug("%s: %s", self.name, note)
        if out.rebirth is not None and self._client is not None:
            self._rebirths += 1
            log.info(
                "%s: asking %s/%s for a rebirth (%s)",
                self.name,
                out.rebirth.group,
                out.rebirth.node,
                out.rebirth.reason,
            )
            self._client.publish(out.rebirth.topic, out.rebirth.payload(received), qos=0)

    def _own_state(self, payload: bytes, retain: int) -> None:
        """Our STATE topic. The retained message replayed on subscribing is the past (our birth
        follows it); a live "offline" while we are online is a late will of an earlier
        connection overwriting our birth, so edge nodes would hold their data: birth again."""
        try:
            state = _STATE.decode(payload)
            online = state.get("online") if isinstance(state, dict) else None
        except (msgspec.DecodeError, RecursionError):
            online = None
        if online is None:
            raise DecodeError("json", 'STATE is not {"online": ..., "timestamp": ...}')
        if online is False and not retain and self._state_born and self._client is not None:
            log.warning("%s: %s says offline while we are connected; publishing the birth again",
                        self.name, self._state_topic)  # fmt: skip
            self._birth(self._client)

    def _reject(self, topic: str, payload: bytes | bytearray, received: int, e: DecodeError) -> None:
        key = topic if topic in self._malformed or len(self._malformed) < _MAX_TOPICS else "<other>"
        ring = self._malformed.get(key)
        if ring is None:
            ring = self._malformed[key] = _Ring(last=deque(maxlen=self._keep))
        ring.count += 1
        ring.last.append(RejectedMessage(received, e.cause, str(e), bytes(payload[:256])))
        if self._sink is not None:
            self._sink.error(
                self.name, MalformedPayload(self.name, self.address, f"malformed payload on {key}: {e.cause}")
            )

    # -- socket events ----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Read up to ``_BURST`` bytes in ``_RECV`` pieces and dispatch every complete packet."""
        client = self._client
        sock = client.socket() if client is not None else None
        if client is None or sock is None:
            return
        read = 0
        while read < _BURST and not self._paused_now:
            try:
                data = sock.recv(_RECV)
            except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
                break
            except ssl.SSLWantWriteError:
                self._on_register_write(client, None, sock)
                break
            except OSError as e:  # includes ssl.SSLError: TLS 1.3 refusals arrive as a read error
                self._socket_error = str(e)
                self._flush()
                mqtt_wire.connection_lost(client)
                return
            if not data:
                self._flush()
                mqtt_wire.connection_lost(client)
                return
            read += len(data)
            self._now = self._clock()  # one receive time per read: these bytes arrived together
            try:
                going = self._reader.feed(data, self._receive, self._paho_packet)
            except mqtt_wire.ProtocolError as e:
                log.warning("%s: %s from the broker; reconnecting", self.name, e)
                self._flush()
                mqtt_wire.hand_to_paho(client, 0, b"")  # an unknown packet: paho closes and reports it
                return
            if not going or client.socket() is not sock:
                break
            pending = getattr(sock, "pending", None)
            if len(data) < _RECV and not (pending is not None and pending() > 0):
                break
        if client.socket() is sock:
            mqtt_wire.received_bytes(client)
        self._flush()

    def _paho_packet(self, header: int, body: bytes) -> bool:
        """Every packet but a plain PUBLISH goes to paho; False once paho closed the link."""
        client = self._client
        if client is None:
            return False
        mqtt_wire.hand_to_paho(client, header, body)
        return client.socket() is not None

    def _on_writable(self) -> None:
        client = self._client
        if client is not None:
            client.loop_write()

    def _start_timer(self) -> None:
        assert self._loop is not None
        period = min(1.0, self.source.heartbeat / NS_PER_S)
        self._timer = self._loop.call_later(period, self._tick, period)

    def _tick(self, period: float) -> None:
        """paho's housekeeping (keep-alive) and the heartbeat; a timer, not a sleep loop."""
        client = self._client
        if client is None or self._loop is None:
            return
        client.loop_misc()
        now = self._clock()
        if self._connected and not self._paused_now and now - self._last_heartbeat >= self.source.heartbeat:
            self._last_heartbeat = now
            self._flush()
            self._push(_Heartbeat(now - self.source.lag))
        self._timer = self._loop.call_later(period, self._tick, period)

    # -- handoff ----------------------------------------------------------------------------------

    def _flush(self) -> None:
        if not (len(self._pending) or len(self._pending_hist) or self._pending_acks):
            return
        live: SampleBatch | None = self._pending.take().sorted() if len(self._pending) else None
        hist = self._pending_hist.take() if len(self._pending_hist) else None
        acks, self._pending_acks = self._pending_acks, []
        if live is not None:
            live, old = self._history.split(live)
            if old is not None:
                hist = old if hist is None else SampleBatch.concat(self.tags, [hist, old])
            if not len(live):
                live = None
        self._push(_Batch(live, hist, acks))

    def _push(self, item: _Item) -> None:
        self._items.append(item)
        self._wake.set()
        if isinstance(item, _Batch) and len(self._items) >= self._handoff and not self._paused_now:
            self._pause()

    def _pause(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._paused_now = True
            self._paused += 1

    def _resume(self) -> None:
        self._paused_now = False
        if self._loop is not None and self._fd >= 0:
            self._loop.add_reader(self._fd, self._on_readable)
            self._on_readable()  # SSL may hold decrypted bytes the selector cannot see

    def _coalesce(self, batch: _Batch) -> _Batch:
        """``batch`` with the batches queued right behind it (they queued during the last put)."""
        items = self._items
        group = [batch]
        n = len(batch)
        while items and n < _COALESCE and isinstance(items[0], _Batch):
            nxt = items.popleft()
            assert isinstance(nxt, _Batch)
            group.append(nxt)
            n += len(nxt)
        if len(group) == 1:
            return batch
        return _Batch(
            self._join([b.live for b in group]),
            self._join([b.historical for b in group]),
            [mid for b in group for mid in b.acks],
        )

    def _join(self, batches: list[SampleBatch | None]) -> SampleBatch | None:
        present = [b for b in batches if b is not None]
        return SampleBatch.concat(present[0].tags, present) if present else None

    async def _deliver(self, sink: Sink, client: mqtt.Client) -> None:
        items = self._items
        while True:
            if not items:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = items.popleft()
            if isinstance(item, _Batch):
                item = self._coalesce(item)
            if self._paused_now and len(items) < self._handoff // 2 + 1:
                self._resume()
            if isinstance(item, _Batch):
                await self._deliver_batch(sink, client, item)
            elif isinstance(item, _Heartbeat):
                sink.heartbeat(self.name, item.ts)
            else:
                raise item

    async def _deliver_batch(self, sink: Sink, client: mqtt.Client, item: _Batch) -> None:
        if item.historical is not None:  # older by nature: ahead of the live samples of the same burst
            self._hist_count += len(item.historical)
            if self._historical_sink is not None:
                await self._historical_sink(_rows(item.historical))
            else:
                await put_historical(sink, _rows(item.historical))
        if item.live is not None:
            self._samples += len(item.live)
            await sink.put(_rows(item.live))
        if item.acks and client.socket() is not None:
            mqtt_wire.queue_pubacks(client, item.acks)

    async def _offline(self, sink: Sink, client: mqtt.Client) -> None:
        """A Sparkplug host stopping: publish the death, wait for the broker's PUBACK (so our
        DISCONNECT cannot overtake it), and deliver what arrived meanwhile: edge nodes hold
        their data only from the moment they see it. Bounded, as shutdown must be."""
        assert self._state_topic is not None
        self._state_born = False  # our own death echoing back is not a late will to answer
        acked = asyncio.Event()
        info = client.publish(self._state_topic, _state(online=False, ts=self._clock() // NS_PER_MS), qos=1,
                              retain=True)  # fmt: skip
        client.on_publish = lambda c, u, mid, rc, p: acked.set() if mid == info.mid else None
        with contextlib.suppress(TimeoutError, SourceError):
            async with asyncio.timeout(min(2.0, self.source.timeout / NS_PER_S)):
                await acked.wait()
                self._flush()
                while self._items:
                    item = self._items.popleft()
                    if isinstance(item, _Batch):
                        await self._deliver_batch(sink, client, item)


def _discard_unread(sock: Any) -> None:
    """Read away what the broker sent that we will not handle any more: closing a socket with
    unread bytes makes the kernel send RST instead of FIN, and the broker may then drop our
    DISCONNECT unread (and publish our will, Sparkplug STATE offline with the birth's time)."""
    for _ in range(64):
        try:
            if not sock.recv(_RECV):
                return
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError):
            return


def _rows(batch: SampleBatch) -> list[Sample]:
    """The sink boundary: ``Sink.put`` takes ``Sample`` lists today. When sinks take columns,
    this returns ``batch`` itself (its ``tags`` is the collector's ``TagRegistry``)."""
    return to_samples(batch)


def _state(*, online: bool, ts: int) -> bytes:
    """A Sparkplug 3.0 STATE payload: ``{"online": ..., "timestamp": <ms since epoch, UTC>}``."""
    return msgspec.json.encode({"online": online, "timestamp": ts})
