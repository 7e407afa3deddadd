"""Replay a recorded sample file (SPEC §3 CSV, or Parquet) through one protocol at a speed factor.

The file is read whole (``samplefile``), sorted by time (stable: file order within one
instant) and played as frames, one per distinct timestamp. Frame ``i`` is emitted when the
replay's clock reaches ``started + (ts_i - ts_0) / speed``; ``speed=None`` emits as fast as
the target takes them. ``ReplayStats`` records the replay's own clock (start, end, how late
each frame was), so a speed factor is checked against what the replay did, not a test's sleep.

Timestamps sent (OPC UA SourceTimestamp, MQTT JSON ``ts``) keep the recording's spacing:
``shifted`` (default) moves the first one to the replay's start, so the watermark runs with
the wall clock at 1x and a live pipeline computes the alerts a backtest of the file does;
``original`` sends the recorded instants unchanged. Modbus carries no timestamps: the collector
stamps values when it polls, so a Modbus replay is paced on the wall clock only.

Where tags go (``ReplayTarget.mapping`` lists it; ``plantpulse simulate --replay`` prints it):

========  =======================================================================================
opcua     a Double variable per tag, NodeId ``ns=2;s=<tag>``; bad samples are written with
          BadSensorFailure, uncertain ones with UncertainLastUsableValue
mqtt      JSON ``{"ts": <epoch ms>, "tag": ..., "value": ..., "quality": ...}`` on
          ``<prefix>/<tag>``, QoS 1, in order; bad samples have ``value`` null
modbus    holding registers, float32 ABCD per tag: tag ``i`` (sorted by name) at unit
          ``1 + i // 32768``, address ``2 * (i % 32768)``; bad samples are NaN
========  =======================================================================================

Polled and subscribed protocols sample: a Modbus poll sees the value of the moment, and an
OPC UA monitored item queues at most 10 changes per publishing interval. Values that change
faster than the collector reads them are missed there, as with a real device.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from asyncua import ua
from asyncua.server.server import Server
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.modbus_plan import encode
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.config import OpcUaSource, OpcUaTag
from plantpulse.errors import ListenError
from plantpulse.ports import free_port
from plantpulse.samplefile import read_samples
from plantpulse.samples import Quality, TagRegistry
from plantpulse.simulators.modbus import ModbusDeviceServer
from plantpulse.simulators.scenario import BAD_STATUS_CODES, NAMESPACE_URI, node_id

__all__ = [
    "ModbusReplayTarget",
    "MqttReplayTarget",
    "OpcUaReplayTarget",
    "ReplayData",
    "ReplayStats",
    "ReplayTarget",
    "Replayer",
    "load_replay",
    "make_target",
]

log = logging.getLogger(__name__)

ReplayProtocol = Literal["opcua", "modbus", "mqtt"]
Timestamps = Literal["shifted", "original"]
REGISTERS_PER_UNIT = 32768  # float32 tags: two registers each, addresses 0-65535
DEFAULT_MQTT_PREFIX = "plantpulse/replay"
_UNCERTAIN = BAD_STATUS_CODES["UncertainLastUsableValue"]
_BAD = BAD_STATUS_CODES["BadSensorFailure"]


@dataclass(frozen=True)
class ReplayData:
    """A recording sorted by time: parallel arrays; ``tag`` indexes ``names`` (sorted)."""

    ts: npt.NDArray[np.int64]
    tag: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    names: list[str]

    @property
    def span_ns(self) -> int:
        return int(self.ts[-1] - self.ts[0]) if len(self.ts) else 0

    def frames(self) -> list[tuple[int, int]]:
        """``(start, end)`` row ranges sharing one timestamp, in time order."""
        if not len(self.ts):
            return []
        cuts = np.flatnonzero(np.diff(self.ts)) + 1
        bounds = [0, *cuts.tolist(), len(self.ts)]
        return list(itertools.pairwise(bounds))


def load_replay(path: str | Path) -> ReplayData:
    """Read a sample file whole; tags are numbered by sorted name so every map is stable."""
    registry = TagRegistry()
    batches = list(read_samples(path, registry))
    if not batches:
        raise ValueError(f"{path}: no samples to replay")
    ts = np.concatenate([b.ts for b in batches])
    ids = np.concatenate([b.tag for b in batches])
    value = np.concatenate([b.value for b in batches])
    quality = np.concatenate([b.quality for b in batches])
    names = sorted(registry.names)
    position = {name: i for i, name in enumerate(names)}
    renumber = np.array([position[registry.name(i)] for i in range(len(registry))], dtype=np.int32)
    order = np.argsort(ts, kind="stable")
    return ReplayData(ts[order], renumber[ids[order]], value[order], quality[order], names)


class ReplayTarget(Protocol):
    """Where a replay goes: a server or publisher serving ``names``."""

    names: list[str]
    keeps_serving: bool
    """After the replay: a server still serves the last values (True); a publisher has
    nothing left to do once the broker acknowledged everything (False)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def emit(
        self, stamp_ns: int, tags: Sequence[int], values: Sequence[float], qualities: Sequence[int]
    ) -> None: ...
    async def flush(self) -> None:
        """Wait until everything emitted so far is with the receiving side (broker acks)."""

    def mapping(self) -> list[str]:
        """``tag -> address`` lines for the log."""

    def source(self, **options: Any) -> OpcUaSource | ModbusSource | MqttSource:
        """The collector config that reads this target."""


@dataclass
class ReplayStats:
    """The replay's own clock: when it started and ended, and how late frames were emitted."""

    speed: float | None
    span_ns: int
    started_ns: int = 0
    finished_ns: int = 0
    frames: int = 0
    samples: int = 0
    max_late_ns: int = 0
    late_ns: list[int] = field(default_factory=list, repr=False)

    @property
    def elapsed_ns(self) -> int:
        return self.finished_ns - self.started_ns

    @property
    def achieved_speed(self) -> float:
        return self.span_ns / self.elapsed_ns if self.elapsed_ns > 0 else math.inf


class Replayer:
    """Plays ``data`` into ``target``: ``stats = await Replayer(data, target, speed=10).run()``."""

    def __init__(
        self,
        data: ReplayData,
        target: ReplayTarget,
        *,
        speed: float | None = 1.0,
        timestamps: Timestamps = "shifted",
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive or None (as fast as possible), not {speed}")
        self.data = data
        self.target = target
        self.speed = speed
        self.timestamps = timestamps
        self._clock = clock
        self._sleep = sleep
        self.stats = ReplayStats(speed, data.span_ns)

    def stamp(self, ts_ns: int) -> int:
        """The timestamp sent for a recorded one (ms resolution: what OPC UA and JSON carry)."""
        if self.timestamps == "original":
            return ts_ns
        shifted = self.stats.started_ns + (ts_ns - int(self.data.ts[0]))
        return shifted - shifted % 1_000_000

    async def run(self) -> ReplayStats:
        d, stats = self.data, self.stats
        stats.started_ns = self._clock()
        ts0 = int(d.ts[0])
        for lo, hi in d.frames():
            ts = int(d.ts[lo])
            if self.speed is not None:
                due = stats.started_ns + round((ts - ts0) / self.speed)
                wait = due - self._clock()
                if wait > 0:
                    await self._sleep(wait / 1e9)
                late = max(self._clock() - due, 0)
                stats.late_ns.append(late)
                stats.max_late_ns = max(stats.max_late_ns, late)
            await self.target.emit(
                self.stamp(ts), d.tag[lo:hi].tolist(), d.value[lo:hi].tolist(), d.quality[lo:hi].tolist()
            )
            stats.frames += 1
            stats.samples += hi - lo
            if self.speed is None and not stats.frames % 100:
                await asyncio.sleep(0)  # as fast as possible, but let the servers serve
        await self.target.flush()
        stats.finished_ns = self._clock()
        return stats


# -- OPC UA -----------------------------------------------------------------------------------------


class OpcUaReplayTarget:
    """An asyncua server with one Double variable per tag under ``Objects/replay``."""

    keeps_serving = True

    def __init__(self, names: list[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.names = names
        self.host = host
        self.port = port or free_port(host)
        self._server: Server | None = None
        self._nodes: list[ua.NodeId] = []

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/plantpulse"

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("plantpulse replay")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE_URI)
        folder = await server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={ns};s=replay"), ua.QualifiedName("replay", ns)
        )
        self._nodes = []
        for name in self.names:
            var = await folder.add_variable(
                ua.NodeId.from_string(node_id(name, ns)), ua.QualifiedName(name, ns), ua.Variant(0.0)
            )
            self._nodes.append(var.nodeid)
        try:
            await server.start()
        except OSError as e:
            raise ListenError.from_exception(e, "opcua", self.host, self.port) or e from None
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def emit(
        self, stamp_ns: int, tags: Sequence[int], values: Sequence[float], qualities: Sequence[int]
    ) -> None:
        server = self._server
        assert server is not None
        source_ts = datetime.fromtimestamp(stamp_ns // 1_000_000_000, UTC).replace(
            microsecond=(stamp_ns % 1_000_000_000) // 1000
        )
        now = datetime.now(UTC)
        for t, v, q in zip(tags, values, qualities, strict=True):
            code = _BAD if q == Quality.BAD or math.isnan(v) else _UNCERTAIN if q == Quality.UNCERTAIN else 0
            variant = (
                ua.Variant(None, ua.VariantType.Null)
                if code == _BAD
                else ua.Variant(v, ua.VariantType.Double)
            )
            fields: dict[str, Any] = {"SourceTimestamp": source_ts, "ServerTimestamp": now}
            dv = ua.DataValue(Value=variant, StatusCode=ua.StatusCode(cast(Any, code)), **fields)
            await server.write_attribute_value(self._nodes[t], dv)

    async def flush(self) -> None:
        return None

    def mapping(self) -> list[str]:
        return [f"{name} -> {node_id(name)}" for name in self.names]

    def source(self, **options: Any) -> OpcUaSource:
        tags = [OpcUaTag(name=n, node=node_id(n)) for n in self.names]
        return OpcUaSource.model_validate(
            {"kind": "opcua", "name": "replay-opcua", "endpoint": self.endpoint, "tags": tags} | options
        )


# -- Modbus -----------------------------------------------------------------------------------------


def _slot(i: int) -> tuple[int, int]:
    return 1 + i // REGISTERS_PER_UNIT, 2 * (i % REGISTERS_PER_UNIT)


class ModbusReplayTarget:
    """A Modbus TCP server holding one float32 (ABCD) per tag in holding registers."""

    keeps_serving = True

    def __init__(self, names: list[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.names = names
        layout: dict[int, dict[Any, dict[int, int]]] = {}
        for i in range(len(names)):
            unit, address = _slot(i)
            layout.setdefault(unit, {}).setdefault("holding", {}).update({address: 0, address + 1: 0})
        self.server = ModbusDeviceServer(layout, host, port)
        self._tags = [self._tag(i) for i in range(len(names))]

    def _tag(self, i: int) -> Any:
        unit, address = _slot(i)
        return {"name": self.names[i], "unit_id": unit, "address": address, "type": "float32"}

    @property
    def address(self) -> str:
        return self.server.address

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def emit(
        self, stamp_ns: int, tags: Sequence[int], values: Sequence[float], qualities: Sequence[int]
    ) -> None:
        for t, v, q in zip(tags, values, qualities, strict=True):
            unit, address = _slot(t)
            value = math.nan if q == Quality.BAD else v  # NaN decodes as a bad sample
            self.server.set(unit, "holding", address, encode(value, _FLOAT32))

    async def flush(self) -> None:
        return None

    def mapping(self) -> list[str]:
        out = []
        for i, name in enumerate(self.names):
            unit, address = _slot(i)
            out.append(f"{name} -> unit {unit} holding {address}-{address + 1} float32 ABCD")
        return out

    def source(self, **options: Any) -> ModbusSource:
        config = {
            "kind": "modbus",
            "name": "replay-modbus",
            "tcp": {"host": self.server.host, "port": self.server.port},
            "tags": self._tags,
        }
        return ModbusSource.model_validate(config | options)


_FLOAT32 = ModbusSource.model_validate(
    {
        "kind": "modbus",
        "name": "x",
        "tcp": {"host": "x"},
        "tags": [{"name": "x", "address": 0, "type": "float32"}],
    }
).tags[0]


# -- MQTT -------------------------------------------------------------------------------------------


class MqttReplayTarget:
    """A paho publisher: one QoS 1 JSON message per sample on ``<prefix>/<tag>``.

    paho's network thread does the I/O (as in ``MqttSimulator``); ``flush`` waits on the
    broker's PUBACKs through an event, never synchronously, so an embedded broker in the same
    loop works."""

    keeps_serving = False

    def __init__(
        self,
        names: list[str],
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        prefix: str = DEFAULT_MQTT_PREFIX,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.names = names
        self.host, self.port = host, port
        self.prefix = prefix.rstrip("/")
        self._client_id = client_id or f"plantpulse-replay-{id(self):x}"
        self._connect_timeout = connect_timeout
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._acked = asyncio.Event()
        self.published = 0
        self.acked = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv311)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)  # unbounded: flush() waits for the broker instead
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        self._client = client
        await asyncio.to_thread(client.connect, self.host, self.port, 30)
        client.loop_start()
        async with asyncio.timeout(self._connect_timeout):
            await self._connected.wait()

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure and self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.set)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ack)

    def _ack(self) -> None:
        self.acked += 1
        if self.acked >= self.published:
            self._acked.set()

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def emit(
        self, stamp_ns: int, tags: Sequence[int], values: Sequence[float], qualities: Sequence[int]
    ) -> None:
        client = self._client
        assert client is not None
        ms = stamp_ns // 1_000_000
        for t, v, q in zip(tags, values, qualities, strict=True):
            bad = q == Quality.BAD or math.isnan(v)
            body = {
                "ts": ms,
                "tag": self.names[t],
                "value": None if bad else v,
                "quality": "bad" if bad else Quality(q).name.lower(),
            }
            self._acked.clear()
            self.published += 1
            client.publish(self.topic(self.names[t]), json.dumps(body).encode(), qos=1)

    async def flush(self) -> None:
        while self.acked < self.published:
            self._acked.clear()
            await self._acked.wait()

    def mapping(self) -> list[str]:
        return [f"{name} -> {self.topic(name)}" for name in self.names]

    def source(self, **options: Any) -> MqttSource:
        sub = {
            "topic": f"{self.prefix}/#",
            "tag": "{tag}",
            "value": "value",
            "quality": "quality",
            "timestamp": "$.ts",
            "timestamp_format": "ms",
        }
        config = {
            "kind": "mqtt",
            "name": "replay-mqtt",
            "host": self.host,
            "port": self.port,
            "subscriptions": [sub],
        }
        return MqttSource.model_validate(config | options)


def make_target(
    protocol: ReplayProtocol,
    names: list[str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    mqtt_broker: tuple[str, int] | None = None,
    mqtt_prefix: str = DEFAULT_MQTT_PREFIX,
) -> ReplayTarget:
    """The target for ``protocol``; MQTT publishes to ``mqtt_broker`` (required for it)."""
    if protocol == "opcua":
        return OpcUaReplayTarget(names, host, port)
    if protocol == "modbus":
        return ModbusReplayTarget(names, host, port)
    if mqtt_broker is None:
        raise ValueError("an MQTT replay needs a broker")
    return MqttReplayTarget(names, *mqtt_broker, prefix=mqtt_prefix)


class running:
    """``async with running(target):`` starts and stops a target."""

    def __init__(self, target: ReplayTarget) -> None:
        self.target = target

    async def __aenter__(self) -> ReplayTarget:
        await self.target.start()
        return self.target

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.target.stop()
