"""An MQTT publisher that plays a scenario: JSON devices or a Sparkplug B edge node.

Time works as in the OPC UA simulator: tick ``k`` is published at wall-clock
``start_ns + k * tick`` and carries that instant as its timestamp, and only values or
statuses that changed are published, so a collector's samples equal ``truth_samples``.

Formats (``mqtt_source`` returns the matching collector config):

``json`` (one message per tag and change)
    ``<prefix>/<asset>/<welder>/<signal>``: ``{"ts": <epoch ms>, "value": 180.2, "quality": "good"}``
    (``value`` null and ``quality`` "bad" under a bad_quality fault).
``json`` with ``batch=True`` (one message per welder and tick)
    ``<prefix>/<asset>/<welder>``: ``{"ts": ..., "readings": [{"signal": "current", "value": ...,
    "quality": "good"}, ...]}`` holding only the signals that changed.
``sparkplug``
    Edge node ``<asset>`` (``/`` -> ``_``) in group ``plantpulse``, one device per welder, one
    metric per signal with alias = its index. NBIRTH (bdSeq, ``Node Control/Rebirth``) and
    DBIRTHs with every current value on connect and on a rebirth NCMD; DDATA by alias with
    the changed metrics per tick; NDEATH is the MQTT will. A dropout publishes DDEATH and,
    when it ends, DBIRTH (so births repeat unchanged values: more samples than the truth);
    bad_quality sends ``is_null`` with the ``Quality`` property 0.
``sparkplug`` with ``primary_host=ID``
    An edge node configured with a Primary Host ID (Sparkplug 3.0, as Ignition's MQTT
    Transmission is): it subscribes to ``spBv1.0/STATE/<ID>`` and publishes nothing until that
    host says ``{"online": true}``; while the host is offline it keeps ticking and holds every
    change (store and forward). When the host is online again it publishes NBIRTH and DBIRTHs
    with the current values, then the held changes as DDATA with ``is_historical`` metrics
    carrying their own timestamps. STATE messages older than the newest one seen are ignored
    (a late will of an earlier host session).

The paho client runs its own network thread (``loop_start``): publishing is thread-safe and a
simulator is not the thing under test. Nothing here ever waits synchronously on the broker,
so an ``EmbeddedBroker`` in the same event loop works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.sparkplug import (
    BDSEQ_METRIC,
    NAMESPACE,
    REBIRTH_METRIC,
    DataType,
    MetricValue,
    decode_payload,
    encode_payload,
    node_topic,
)
from plantpulse.errors import SourceUnavailable
from plantpulse.simulators.scenario import SIGNALS, Scenario
from plantpulse.simulators.service import Service

__all__ = ["DEFAULT_GROUP", "DEFAULT_PREFIX", "MqttSimulator", "mqtt_source"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "plantpulse/sim"
DEFAULT_GROUP = "plantpulse"
Format = Literal["json", "sparkplug"]
_Frames = list[tuple[list[float], list[int], list[bool]]]  # per signal: values, statuses, updated


def edge_node_id(scenario: Scenario) -> str:
    return scenario.asset.replace("/", "_")


def mqtt_source(
    scenario: Scenario,
    host: str,
    port: int,
    format: Format = "json",
    *,
    name: str = "weld-mqtt",
    batch: bool = False,
    prefix: str = DEFAULT_PREFIX,
    group: str = DEFAULT_GROUP,
    qos: Literal[0, 1] = 1,
    **options: Any,
) -> MqttSource:
    """The collector config that reads a running ``MqttSimulator`` with the same arguments."""
    base: dict[str, Any] = {"kind": "mqtt", "name": name, "host": host, "port": port, "qos": qos}
    if format == "sparkplug":
        base |= {
            "format": "sparkplug",
            "sparkplug": {
                "group": group,
                "edge_nodes": [edge_node_id(scenario)],
                "tag": f"{scenario.asset}/{{device}}/{{metric}}",
            },
        }
    elif batch:
        base["subscriptions"] = [
            {
                "topic": f"{prefix}/{scenario.asset}/+",
                "tag": f"{scenario.asset}/{{-1}}/{{signal}}",
                "array": "$.readings",
                "value": "value",
                "quality": "quality",
                "timestamp": "$.ts",
                "timestamp_format": "ms",
            }
        ]
    else:
        base["subscriptions"] = [
            {
                "topic": f"{prefix}/{scenario.asset}/+/+",
                "tag": f"{scenario.asset}/{{-2}}/{{-1}}",
                "value": "$.value",
                "quality": "$.quality",
                "timestamp": "$.ts",
                "timestamp_format": "ms",
            }
        ]
    return MqttSource.model_validate(base | options)


class MqttSimulator(Service):
    """``async with MqttSimulator(scenario, host, port, format="json") as sim:`` publishes until exit."""

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        format: Format = "json",
        batch: bool = False,
        prefix: str = DEFAULT_PREFIX,
        group: str = DEFAULT_GROUP,
        qos: Literal[0, 1] = 1,
        start_ns: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
        primary_host: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.connect_timeout = connect_timeout
        self.host, self.port = host, port
        self.format: Format = format
        self.batch = batch
        self.prefix = prefix
        self.group = group
        self.node = edge_node_id(scenario)
        self.qos = qos
        self._clock = clock
        self._fixed_start = start_ns
        self.start_ns = start_ns if start_ns is not None else scenario.start_ns(clock())
        self._client_id = client_id or f"plantpulse-sim-{scenario.name}-{id(self):x}"
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._last: dict[tuple[int, int], tuple[float, int]] = {}  # (signal, row) -> (value, status)
        self._k = 0
        self._bd_seq = 0
        self._seq = 0
        self._dead: set[int] = set()  # welder rows in a dropout (Sparkplug: DDEATH sent)
        self.ticks_written = 0
        self.messages_published = 0
        self.rebirths = 0
        self.primary_host = primary_host
        self.host_online = primary_host is None
        """False while a configured primary host is not online: changes are held, not sent."""
        self._state_ts = -1  # newest STATE timestamp seen (ms)
        self._held: list[tuple[int, str, list[MetricValue]]] = []  # (ts ms, welder, metrics)
        self.held_ticks: list[int] = []
        """Ticks whose changes were held while the primary host was away (then sent as history)."""
        self.host_changes = 0
        self._tick_event = asyncio.Event()
        self._host_event = asyncio.Event()

    # -- life -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, publish tick 0 (births first for Sparkplug) and start ticking."""
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv311)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        if self.format == "sparkplug":
            self._bd_seq = (self._bd_seq + 1) % 256
            will = encode_payload(None, None, [MetricValue(BDSEQ_METRIC, None, DataType.INT64, self._bd_seq)])
            client.will_set(node_topic(self.group, "NDEATH", self.node), will, qos=1)
        try:
            await asyncio.to_thread(client.connect, self.host, self.port, 30)
        except OSError as e:  # refused, unknown host, unreachable: the broker is not there
            reason = e.strerror or str(e) or type(e).__name__
            raise SourceUnavailable(
                "MQTT broker", f"mqtt://{self.host}:{self.port}", f"cannot connect: {reason.lower()}"
            ) from e
        self._client = client
        client.loop_start()
        async with asyncio.timeout(self.connect_timeout):
            await self._connected.wait()
        if self._fixed_start is None and self.ticks_written == 0:
            self.start_ns = self.scenario.start_ns(self._clock())
        self._k = max((self._clock() - self.start_ns) // self.scenario.tick, 0)
        self._publish_tick(self._k, birth=self.format == "sparkplug" and self.host_online)
        self._k += 1
        self._task = asyncio.create_task(self._ticks(), name=f"mqtt simulator {self.host}:{self.port}")

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop publishing. ``graceful=False`` drops the connection without DISCONNECT, so the
        broker publishes the will (Sparkplug NDEATH) as it would for a crashed edge node."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        if client is None:
            return
        if graceful and self.format == "sparkplug":
            death = encode_payload(
                None, None, [MetricValue(BDSEQ_METRIC, None, DataType.INT64, self._bd_seq)]
            )
            client.publish(node_topic(self.group, "NDEATH", self.node), death, qos=1)
        if graceful:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        else:
            client.loop_stop()
            sock = client.socket()
            if sock is not None:
                sock.close()

    # -- paho thread -> loop ----------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure or self._loop is None:
            return
        if self.format == "sparkplug":
            client.subscribe(node_topic(self.group, "NCMD", self.node), qos=1)
            if self.primary_host is not None:
                client.subscribe(f"{NAMESPACE}/STATE/{self.primary_host}", qos=1)
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._loop is None:
            return
        if self.primary_host is not None and msg.topic == f"{NAMESPACE}/STATE/{self.primary_host}":
            try:
                state = json.loads(msg.payload)
                online, ts = bool(state["online"]), int(state["timestamp"])
            except (ValueError, KeyError, TypeError):
                return
            self._loop.call_soon_threadsafe(self._host_state, online, ts)
            return
        try:
            payload = decode_payload(msg.payload)
        except ValueError:
            return
        if any(m.name == REBIRTH_METRIC and m.boolean_value for m in payload.metrics):
            self._loop.call_soon_threadsafe(self.rebirth)

    def _host_state(self, online: bool, ts: int) -> None:
        """The primary host's STATE (event loop thread): births and the held history on its
        return, holding while it is away."""
        if ts < self._state_ts:
            return  # older than what we know: a stale will
        self._state_ts = ts
        if online == self.host_online:
            return
        self.host_online = online
        self.host_changes += 1
        self._host_event.set()
        if online and self._client is not None:
            k = max(self._k - 1, 0)
            self._births(k)  # the current values: the last held tick is in them, not in the history
            birth_ms = (self.start_ns + k * self.scenario.tick) // 1_000_000
            held, self._held = [h for h in self._held if h[0] < birth_ms], []
            if self.held_ticks and self.held_ticks[-1] == k:
                self.held_ticks.pop()
            for ts_ms, welder, metrics in held:
                topic = node_topic(self.group, "DDATA", self.node, welder)
                self._publish(topic, encode_payload(ts_ms, self._next_seq(), metrics))

    async def wait_host(self, online: bool) -> None:
        """Return once the primary host's STATE says ``online`` (at once if it does already)."""
        while self.host_online != online:
            self._host_event.clear()
            await self._host_event.wait()

    async def wait_ticks(self, n: int) -> None:
        """Return once ``n`` more ticks were computed (published or held)."""
        target = self.ticks_written + n
        while self.ticks_written < target:
            self._tick_event.clear()
            await self._tick_event.wait()

    # -- test hooks -------------------------------------------------------------------------------

    def rebirth(self) -> None:
        """Publish NBIRTH and every live DBIRTH again (as on an NCMD Node Control/Rebirth)."""
        if self._client is None or self.format != "sparkplug" or not self.host_online:
            return
        self.rebirths += 1
        self._births(max(self._k - 1, 0))

    def skip_seq(self, n: int = 1) -> None:
        """Lose ``n`` Sparkplug messages (advance seq without publishing): a sequence gap."""
        self._seq = (self._seq + n) % 256

    # -- publishing -------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        tick = self.scenario.tick
        while self.scenario.loop or self._k < self.scenario.n_ticks:
            delay = self.start_ns + self._k * tick - self._clock()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            elif -delay > 10 * tick:
                self._k = (self._clock() - self.start_ns) // tick
            self._publish_tick(self._k)
            self._k += 1

    def _publish(self, topic: str, payload: bytes, qos: int | None = None) -> None:
        assert self._client is not None
        self._client.publish(topic, payload, qos=self.qos if qos is None else qos)
        self.messages_published += 1

    def _frames(self, k: int) -> _Frames:
        out = []
        for signal in SIGNALS:
            f = self.scenario.evaluate(signal, [k])
            out.append((f.value[:, 0].tolist(), f.status[:, 0].tolist(), f.updated[:, 0].tolist()))
        return out

    def _changed(self, si: int, row: int, value: float, status: int) -> bool:
        last = self._last.get((si, row))
        if last is not None and last[1] == status and (last[0] == value or status != 0):
            return False
        self._last[(si, row)] = (value, status)
        return True

    def _publish_tick(self, k: int, *, birth: bool = False) -> None:
        ts_ns = self.start_ns + k * self.scenario.tick
        ts_ms = ts_ns // 1_000_000
        frames = self._frames(k)
        if birth:
            self._births(k, frames)
            self._ticked()
            return
        for row, welder in enumerate(self.scenario.welder_names()):
            live = frames[0][2][row]  # a dropout stops every signal of the welder
            if self.format == "sparkplug":
                self._sparkplug_row(row, welder, live=live, frames=frames, ts_ms=ts_ms)
                continue
            if not live:
                continue
            changed = [
                (si, frames[si][0][row], frames[si][1][row])
                for si in range(len(SIGNALS))
                if self._changed(si, row, frames[si][0][row], frames[si][1][row])
            ]
            if not changed:
                continue
            if self.batch:
                readings = [{"signal": SIGNALS[si], **_reading(v, st)} for si, v, st in changed]
                topic = f"{self.prefix}/{self.scenario.asset}/{welder}"
                self._publish(topic, json.dumps({"ts": ts_ms, "readings": readings}).encode())
            else:
                for si, v, st in changed:
                    topic = f"{self.prefix}/{self.scenario.asset}/{welder}/{SIGNALS[si]}"
                    self._publish(topic, json.dumps({"ts": ts_ms, **_reading(v, st)}).encode())
        if not self.host_online:
            self.held_ticks.append(k)
        self._ticked()

    def _ticked(self) -> None:
        self.ticks_written += 1
        self._tick_event.set()

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def _births(self, k: int, frames: _Frames | None = None) -> None:
        frames = frames or self._frames(k)
        ts_ms = (self.start_ns + k * self.scenario.tick) // 1_000_000
        self._seq = 0
        nbirth = [
            MetricValue(BDSEQ_METRIC, None, DataType.INT64, self._bd_seq),
            MetricValue(REBIRTH_METRIC, None, DataType.BOOLEAN, False),
        ]
        self._publish(
            node_topic(self.group, "NBIRTH", self.node), encode_payload(ts_ms, self._next_seq(), nbirth), 0
        )
        self._dead.clear()
        for row, welder in enumerate(self.scenario.welder_names()):
            if not frames[0][2][row]:
                self._dead.add(row)
                continue
            self._dbirth(row, welder, frames, ts_ms)

    def _dbirth(self, row: int, welder: str, frames: _Frames, ts_ms: int) -> None:
        metrics = []
        for si, signal in enumerate(SIGNALS):
            v, st = frames[si][0][row], frames[si][1][row]
            self._last[(si, row)] = (v, st)
            metrics.append(_metric(signal, si, v, st))
        topic = node_topic(self.group, "DBIRTH", self.node, welder)
        self._publish(topic, encode_payload(ts_ms, self._next_seq(), metrics), 0)

    def _sparkplug_row(self, row: int, welder: str, *, live: bool, frames: _Frames, ts_ms: int) -> None:
        if not live and not self.host_online:
            return  # a dropout while the host is away: nothing to hold
        if not live:
            if row not in self._dead:
                self._dead.add(row)
                topic = node_topic(self.group, "DDEATH", self.node, welder)
                self._publish(topic, encode_payload(ts_ms, self._next_seq(), []), 0)
            return
        if row in self._dead:
            self._dead.discard(row)
            self._dbirth(row, welder, frames, ts_ms)
            return
        metrics = []
        for si in range(len(SIGNALS)):
            v, st = frames[si][0][row], frames[si][1][row]
            if self._changed(si, row, v, st):
                metrics.append(_metric(None, si, v, st, ts_ms=ts_ms if not self.host_online else None))
        if metrics and not self.host_online:
            self._held.append((ts_ms, welder, metrics))  # store and forward: sent as history later
        elif metrics:
            topic = node_topic(self.group, "DDATA", self.node, welder)
            self._publish(topic, encode_payload(ts_ms, self._next_seq(), metrics))


def _reading(value: float, status: int) -> dict[str, Any]:
    if status or math.isnan(value):
        return {"value": None, "quality": "bad"}
    return {"value": value, "quality": "good"}


def _metric(name: str | None, alias: int, value: float, status: int, ts_ms: int | None = None) -> MetricValue:
    """``ts_ms`` set: a held change, sent later as history with its own timestamp."""
    bad = bool(status) or math.isnan(value)
    return MetricValue(
        name=name,
        alias=alias,
        datatype=DataType.DOUBLE,
        value=None if bad else value,
        quality=0 if bad else None,
        timestamp_ms=ts_ms,
        historical=ts_ms is not None,
    )
