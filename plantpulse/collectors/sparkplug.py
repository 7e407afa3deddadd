"""Pure Sparkplug B: the payload schema, an encoder for the simulator, and a host-side decoder.

Why our own protobuf binding: the maintained Python Sparkplug packages do not fit (pysparkplug
pins ``paho-mqtt<2``; mqtt-spb-wrapper pins paho 1.6.1 and protobuf 3.20; tahutils pins
protobuf<5 with an old generated module). The subset of Eclipse Tahu's ``sparkplug_b.proto``
we need (Payload, Metric, PropertySet, PropertyValue; field numbers unchanged, see
``SCHEMA_PROTO``) is declared here as a FileDescriptorProto and turned into message classes
by the ``protobuf`` runtime at import: no protoc step, no generated file pinned to one
protobuf release. Fields we do not declare (DataSet, Template, MetaData, extensions) are
skipped by the parser as unknown fields, so full Tahu payloads decode.

The decoder (``SparkplugDecoder``) keeps, per edge node, what a Sparkplug host must:

* the NBIRTH's ``bdSeq`` (an NDEATH whose bdSeq differs is a stale will from an older session
  and is ignored) and the node's and each device's alias table (alias -> name, datatype)
  from NBIRTH/DBIRTH, so NDATA/DDATA by alias decode;
* ``seq`` (0..255, one counter across the node and its devices): a gap, data before a birth,
  or an unknown alias asks for a rebirth (``Rebirth`` -> NCMD ``Node Control/Rebirth``),
  at most once per ``rebirth_retry`` until a birth arrives;
* the tags it emitted per node/device, so NDEATH/DDEATH turn exactly those bad.

It is pure: bytes, topic and receive time in; samples, a rebirth request and notes out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from plantpulse.collectors.mqtt_config import SparkplugOptions
from plantpulse.collectors.mqtt_json import DecodeError
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import NS_PER_MS

__all__ = [
    "NAMESPACE",
    "DataType",
    "Decoded",
    "MetricValue",
    "Rebirth",
    "SparkplugDecoder",
    "SparkplugTopic",
    "decode_payload",
    "encode_payload",
    "parse_topic",
    "rebirth_payload",
]

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"
QUALITY_PROPERTY = "Quality"

SCHEMA_PROTO = """\
syntax = "proto2";
package org.eclipse.tahu.protobuf;
message Payload {
  message PropertyValue {
    optional uint32 type = 1;  optional bool is_null = 2;
    oneof value { uint32 int_value = 3; uint64 long_value = 4; float float_value = 5;
                  double double_value = 6; bool boolean_value = 7; string string_value = 8; }
  }
  message PropertySet { repeated string keys = 1; repeated PropertyValue values = 2; }
  message Metric {
    optional string name = 1;  optional uint64 alias = 2;  optional uint64 timestamp = 3;
    optional uint32 datatype = 4;  optional bool is_historical = 5;  optional bool is_transient = 6;
    optional bool is_null = 7;  optional PropertySet properties = 9;
    oneof value { uint32 int_value = 10; uint64 long_value = 11; float float_value = 12;
                  double double_value = 13; bool boolean_value = 14; string string_value = 15;
                  bytes bytes_value = 16; }
  }
  optional uint64 timestamp = 1;  repeated Metric metrics = 2;  optional uint64 seq = 3;
  optional string uuid = 4;  optional bytes body = 5;
}
"""
"""The subset of Tahu's sparkplug_b.proto that ``_build_payload_class`` declares (documentation)."""


class DataType:
    """Sparkplug B datatype codes (Tahu ``Payload`` comment block)."""

    UNKNOWN, INT8, INT16, INT32, INT64 = 0, 1, 2, 3, 4
    UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
    FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14


_SIGNED32 = {DataType.INT8, DataType.INT16, DataType.INT32}
_NUMERIC = {
    DataType.UNKNOWN, DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8,
    DataType.UINT16, DataType.UINT32, DataType.UINT64, DataType.FLOAT, DataType.DOUBLE, DataType.BOOLEAN,
}  # fmt: skip


def _build_payload_class() -> Any:
    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    types = {
        "uint32": F.TYPE_UINT32, "uint64": F.TYPE_UINT64, "float": F.TYPE_FLOAT, "double": F.TYPE_DOUBLE,
        "bool": F.TYPE_BOOL, "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES,
    }  # fmt: skip
    pkg = ".org.eclipse.tahu.protobuf.Payload"

    def add(
        msg: Any, name: str, number: int, typ: str, *, label: int = opt, oneof: int | None = None
    ) -> None:
        f = msg.field.add(name=name, number=number, label=label)
        if typ in types:
            f.type = types[typ]
        else:
            f.type = F.TYPE_MESSAGE
            f.type_name = f"{pkg}.{typ}"
        if oneof is not None:
            f.oneof_index = oneof

    fdp = descriptor_pb2.FileDescriptorProto(
        name="plantpulse/sparkplug_b_subset.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = fdp.message_type.add(name="Payload")
    pv = payload.nested_type.add(name="PropertyValue")
    add(pv, "type", 1, "uint32")
    add(pv, "is_null", 2, "bool")
    pv.oneof_decl.add(name="value")
    for i, (n, t) in enumerate(
        [("int_value", "uint32"), ("long_value", "uint64"), ("float_value", "float"),
         ("double_value", "double"), ("boolean_value", "bool"), ("string_value", "string")]
    ):  # fmt: skip
        add(pv, n, 3 + i, t, oneof=0)
    ps = payload.nested_type.add(name="PropertySet")
    add(ps, "keys", 1, "string", label=rep)
    add(ps, "values", 2, "PropertyValue", label=rep)
    m = payload.nested_type.add(name="Metric")
    for n, num, t in [
        ("name", 1, "string"), ("alias", 2, "uint64"), ("timestamp", 3, "uint64"), ("datatype", 4, "uint32"),
        ("is_historical", 5, "bool"), ("is_transient", 6, "bool"), ("is_null", 7, "bool"),
        ("properties", 9, "PropertySet"),
    ]:  # fmt: skip
        add(m, n, num, t)
    m.oneof_decl.add(name="value")
    for i, (n, t) in enumerate(
        [("int_value", "uint32"), ("long_value", "uint64"), ("float_value", "float"),
         ("double_value", "double"), ("boolean_value", "bool"), ("string_value", "string"),
         ("bytes_value", "bytes")]
    ):  # fmt: skip
        add(m, n, 10 + i, t, oneof=0)
    add(payload, "timestamp", 1, "uint64")
    add(payload, "metrics", 2, "Metric", label=rep)
    add(payload, "seq", 3, "uint64")
    add(payload, "uuid", 4, "string")
    add(payload, "body", 5, "bytes")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


Payload: Any = _build_payload_class()
"""The protobuf message class of a Sparkplug B payload (dynamic, hence ``Any`` to mypy)."""


# -- encoding (simulators, rebirth commands) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric to encode. ``value=None`` (or NaN) is sent as ``is_null``; ``quality`` adds the
    ``Quality`` property (OPC DA style: 192 good, 64 uncertain, 0 bad)."""

    name: str | None = None
    alias: int | None = None
    datatype: int = DataType.DOUBLE
    value: float | bool | None = None
    timestamp_ms: int | None = None
    quality: int | None = None
    historical: bool = False


def encode_payload(timestamp_ms: int | None, seq: int | None, metrics: Sequence[MetricValue]) -> bytes:
    """A Sparkplug B payload (protobuf bytes)."""
    p = Payload()
    if timestamp_ms is not None:
        p.timestamp = timestamp_ms
    if seq is not None:
        p.seq = seq
    for mv in metrics:
        m = p.metrics.add()
        if mv.name is not None:
            m.name = mv.name
        if mv.alias is not None:
            m.alias = mv.alias
        if mv.timestamp_ms is not None:
            m.timestamp = mv.timestamp_ms
        m.datatype = mv.datatype
        if mv.historical:
            m.is_historical = True
        v = mv.value
        if v is None or (isinstance(v, float) and math.isnan(v)):
            m.is_null = True
        elif mv.datatype == DataType.BOOLEAN:
            m.boolean_value = bool(v)
        elif mv.datatype == DataType.FLOAT:
            m.float_value = float(v)
        elif mv.datatype == DataType.DOUBLE:
            m.double_value = float(v)
        elif mv.datatype in (DataType.INT64, DataType.UINT64, DataType.DATETIME):
            m.long_value = int(v) & 0xFFFFFFFFFFFFFFFF
        else:
            m.int_value = int(v) & 0xFFFFFFFF
        if mv.quality is not None:
            m.properties.keys.append(QUALITY_PROPERTY)
            pv = m.properties.values.add()
            pv.type = DataType.INT32
            pv.int_value = mv.quality
    return bytes(p.SerializeToString())


def rebirth_payload(timestamp_ms: int) -> bytes:
    """NCMD body asking an edge node to publish NBIRTH and all DBIRTHs again."""
    return encode_payload(timestamp_ms, None, [MetricValue(REBIRTH_METRIC, None, DataType.BOOLEAN, True)])


def decode_payload(data: bytes | bytearray) -> Any:
    """Parse protobuf bytes; DecodeError("protobuf") when they are not a Sparkplug payload."""
    p = Payload()
    try:
        p.ParseFromString(bytes(data))
    except (message.DecodeError, ValueError, RecursionError) as e:
        raise DecodeError("protobuf", f"not a Sparkplug B payload: {str(e)[:120]}") from None
    return p


# -- topics ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    group: str
    type: str  # NBIRTH, NDATA, NDEATH, NCMD, DBIRTH, DDATA, DDEATH, DCMD
    node: str
    device: str | None


_TYPES = {"NBIRTH", "NDATA", "NDEATH", "NCMD", "DBIRTH", "DDATA", "DDEATH", "DCMD"}


def parse_topic(topic: str) -> SparkplugTopic:
    """``spBv1.0/<group>/<type>/<node>[/<device>]``; DecodeError for anything else."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in _TYPES or not all(parts[1:]):
        raise DecodeError("topic", f"not a Sparkplug B topic: {topic[:200]!r}")
    device = parts[4] if len(parts) == 5 else None
    if (device is None) != parts[2].startswith("N"):
        raise DecodeError(
            "topic", f"{parts[2]} with{'out' if device is None else ''} a device id: {topic[:200]!r}"
        )
    return SparkplugTopic(parts[1], parts[2], parts[3], device)


def node_topic(group: str, kind: str, node: str, device: str | None = None) -> str:
    return f"{NAMESPACE}/{group}/{kind}/{node}" + (f"/{device}" if device else "")


# -- decoding -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rebirth:
    """An action for the adapter: publish NCMD ``Node Control/Rebirth = true`` to this node."""

    group: str
    node: str
    reason: str

    @property
    def topic(self) -> str:
        return node_topic(self.group, "NCMD", self.node)

    def payload(self, now_ns: int) -> bytes:
        return rebirth_payload(now_ns // NS_PER_MS)


@dataclass(slots=True)
class Decoded:
    """What one message means: live samples, samples flagged historical by the edge node,
    a rebirth request (or None), and notes worth counting (unknown alias, seq gap)."""

    samples: list[Sample] = field(default_factory=list)
    historical: list[Sample] = field(default_factory=list)
    rebirth: Rebirth | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Table:
    """One node's or device's metrics from its birth."""

    aliases: dict[int, tuple[str, int]] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    online: bool = True


@dataclass(slots=True)
class _Node:
    bd_seq: int | None = None
    seq: int | None = None
    born: bool = False
    table: _Table = field(default_factory=_Table)
    devices: dict[str, _Table] = field(default_factory=dict)
    rebirth_at: int | None = None


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _metric_value(m: Any, datatype: int) -> float | None:
    """The metric's number (None: not numeric, skipped). ``is_null`` -> NaN."""
    if datatype not in _NUMERIC:
        return None
    which = m.WhichOneof("value")
    if m.is_null or which is None:
        return math.nan
    if which == "int_value":
        v = int(m.int_value)
        return float(_signed(v, 32) if datatype in _SIGNED32 else v)
    if which == "long_value":
        v = int(m.long_value)
        return float(_signed(v, 64) if datatype == DataType.INT64 else v)
    if which == "float_value":
        return float(m.float_value)
    if which == "double_value":
        return float(m.double_value)
    if which == "boolean_value":
        return 1.0 if m.boolean_value else 0.0
    return None


def _metric_quality(m: Any) -> Quality:
    if not m.HasField("properties"):
        return Quality.GOOD
    props = m.properties
    for key, pv in zip(props.keys, props.values, strict=False):
        if key == QUALITY_PROPERTY and not pv.is_null:
            which = pv.WhichOneof("value")
            if which in ("int_value", "long_value"):
                q = int(getattr(pv, which))
                return Quality.GOOD if q >= 192 else Quality.UNCERTAIN if q >= 64 else Quality.BAD
    return Quality.GOOD


def _bd_seq(p: Any) -> int | None:
    for m in p.metrics:
        if m.name == BDSEQ_METRIC:
            which = m.WhichOneof("value")
            if which in ("int_value", "long_value"):
                return int(getattr(m, which))
    return None


class SparkplugDecoder:
    """A Sparkplug B host's view of one group's edge nodes (pure; one per connection)."""

    def __init__(self, options: SparkplugOptions) -> None:
        self.options = options
        self._nodes: dict[str, _Node] = {}
        self._node_filter = None if "+" in options.edge_nodes else set(options.edge_nodes)
        self._device_filter = None if options.devices is None else set(options.devices)

    def subscriptions(self) -> list[str]:
        """Topic filters covering the configured edge nodes (births, data, deaths)."""
        g = self.options.group
        nodes = ["+"] if self._node_filter is None else sorted(self._node_filter)
        return [f"{NAMESPACE}/{g}/+/{n}/#" for n in nodes]

    def reset(self) -> None:
        """Forget every node (a new connection): each will be asked for a rebirth on first data."""
        self._nodes.clear()

    def online_tags(self) -> list[str]:
        """Tags of nodes/devices currently believed online (for marking them bad on our own loss)."""
        out: list[str] = []
        for node in self._nodes.values():
            if node.born and node.table.online:
                out.extend(sorted(node.table.tags))
                for dev in node.devices.values():
                    if dev.online:
                        out.extend(sorted(dev.tags))
        return out

    # -- the one entry point ----------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes | bytearray, received_ns: int) -> Decoded:
        t = parse_topic(topic)
        out = Decoded()
        if t.group != self.options.group or t.type in ("NCMD", "DCMD"):
            return out
        if self._node_filter is not None and t.node not in self._node_filter:
            return out
        if t.device is not None and self._device_filter is not None and t.device not in self._device_filter:
            return out
        p = decode_payload(payload)
        try:
            return self._decode(t, p, received_ns, out)
        except (ValueError, OverflowError) as e:  # invalid UTF-8 in a string field, absurd numbers
            raise DecodeError("protobuf", f"invalid Sparkplug payload: {str(e)[:120]}") from None

    def _decode(self, t: SparkplugTopic, p: Any, received_ns: int, out: Decoded) -> Decoded:
        msg_ts = p.timestamp * NS_PER_MS if p.HasField("timestamp") else received_ns
        node = self._nodes.get(t.node)
        if t.type == "NDEATH":
            bd = _bd_seq(p)
            if node is None or not node.born:
                return out
            if bd is not None and node.bd_seq is not None and bd != node.bd_seq:
                out.notes.append(f"{t.node}: stale NDEATH (bdSeq {bd}, current {node.bd_seq}) ignored")
                return out
            # the will was written at connect time: its timestamp is not when the node died
            self._death(node.table, received_ns, out)
            for dev in node.devices.values():
                if dev.online:
                    self._death(dev, received_ns, out)
            node.born = False
            node.seq = None
            return out
        if t.type == "NBIRTH":
            node = self._nodes[t.node] = _Node(bd_seq=_bd_seq(p), born=True)
            node.seq = int(p.seq) if p.HasField("seq") else None
            self._birth(t, node.table, p, msg_ts, out)
            return out
        # everything else carries the node's seq and needs a birth first
        if node is None or not node.born:
            node = self._nodes.setdefault(t.node, _Node())
            self._ask(t, node, received_ns, out, "data before NBIRTH")
            return out
        self._check_seq(t, node, p, received_ns, out)
        if t.device is None:  # NDATA
            self._data(t, node, node.table, p, msg_ts=msg_ts, received_ns=received_ns, out=out)
            return out
        if t.type == "DBIRTH":
            table = node.devices[t.device] = _Table()
            self._birth(t, table, p, msg_ts, out)
            return out
        found = node.devices.get(t.device)
        if t.type == "DDEATH":
            if found is not None and found.online:
                self._death(found, msg_ts, out)
            return out
        if found is None or not found.online:
            self._ask(t, node, received_ns, out, f"DDATA before DBIRTH of {t.device}")
            return out
        self._data(t, node, found, p, msg_ts=msg_ts, received_ns=received_ns, out=out)
        return out

    # -- pieces -----------------------------------------------------------------------------------

    def _tag(self, t: SparkplugTopic, metric: str) -> str:
        template = self.options.metrics.get(metric, self.options.tag)
        text = (
            template.replace("{group}", t.group)
            .replace("{node}", t.node)
            .replace("{device}", t.device or "")
            .replace("{metric}", metric)
        )
        return "/".join(part for part in text.split("/") if part)

    @staticmethod
    def _skip(name: str) -> bool:
        return name == BDSEQ_METRIC or name.startswith(("Node Control/", "Device Control/"))

    def _emit(
        self, t: SparkplugTopic, table: _Table, name: str, m: Any, *, datatype: int, msg_ts: int, out: Decoded
    ) -> None:
        if self._skip(name):
            return
        value = _metric_value(m, datatype)
        if value is None:
            return
        ts = m.timestamp * NS_PER_MS if m.HasField("timestamp") else msg_ts
        tag = self._tag(t, name)
        if not tag:
            out.notes.append(f"metric {name!r}: empty tag name")
            return
        table.tags.add(tag)
        sample = Sample(ts, tag, value, _metric_quality(m))
        (out.historical if m.is_historical else out.samples).append(sample)

    def _birth(self, t: SparkplugTopic, table: _Table, p: Any, msg_ts: int, out: Decoded) -> None:
        for m in p.metrics:
            if not m.HasField("name"):
                out.notes.append(f"{t.type} metric without a name ignored")
                continue
            datatype = int(m.datatype)
            table.datatypes[m.name] = datatype
            if m.HasField("alias"):
                table.aliases[int(m.alias)] = (m.name, datatype)
            self._emit(t, table, m.name, m, datatype=datatype, msg_ts=msg_ts, out=out)

    def _data(
        self,
        t: SparkplugTopic,
        node: _Node,
        table: _Table,
        p: Any,
        *,
        msg_ts: int,
        received_ns: int,
        out: Decoded,
    ) -> None:
        for m in p.metrics:
            if m.HasField("name") and m.name:
                name = m.name
                datatype = int(m.datatype) or table.datatypes.get(name, DataType.UNKNOWN)
                if name not in table.datatypes:
                    out.notes.append(f"{t.type} {t.node}/{t.device or ''}: metric {name!r} not in its birth")
            elif m.HasField("alias") and int(m.alias) in table.aliases:
                name, born_type = table.aliases[int(m.alias)]
                datatype = int(m.datatype) or born_type
            else:
                alias = int(m.alias) if m.HasField("alias") else None
                out.notes.append(f"{t.type} {t.node}/{t.device or ''}: unknown alias {alias}")
                self._ask(t, node, received_ns, out, f"unknown alias {alias}")
                continue
            self._emit(t, table, name, m, datatype=datatype, msg_ts=msg_ts, out=out)

    def _death(self, table: _Table, ts: int, out: Decoded) -> None:
        table.online = False
        out.samples.extend(Sample(ts, tag, math.nan, Quality.BAD) for tag in sorted(table.tags))

    def _check_seq(self, t: SparkplugTopic, node: _Node, p: Any, received_ns: int, out: Decoded) -> None:
        if not p.HasField("seq"):
            out.notes.append(f"{t.type} from {t.node} without seq")
            return
        seq = int(p.seq)
        if node.seq is not None and seq != (node.seq + 1) % 256:
            out.notes.append(f"{t.node}: seq gap ({node.seq} -> {seq})")
            self._ask(t, node, received_ns, out, f"seq gap {node.seq} -> {seq}")
        node.seq = seq % 256

    def _ask(self, t: SparkplugTopic, node: _Node, received_ns: int, out: Decoded, reason: str) -> None:
        opts = self.options
        if not opts.rebirth or out.rebirth is not None:
            return
        if node.rebirth_at is not None and received_ns - node.rebirth_at < opts.rebirth_retry:
            return
        node.rebirth_at = received_ns
        out.rebirth = Rebirth(t.group, t.node, reason)
