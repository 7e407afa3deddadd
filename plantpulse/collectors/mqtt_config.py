"""The ``kind: mqtt`` source: broker, session, TLS and how payloads become tags (docs/mqtt.md).

Pure pydantic models (no paho import), so ``plant.yaml`` validates before any I/O. Two payload
formats share one connection model:

* ``format: json`` — ``subscriptions:`` map topic filters to tags with a small path language
  (see ``mqtt_json``): ``tag`` is a template over topic levels and payload fields, ``value``,
  ``timestamp`` and ``quality`` are paths, ``array`` names a list of readings in one message.
* ``format: sparkplug`` — ``sparkplug:`` names the group, the edge nodes and devices to follow
  and how metric names become tags; births, aliases, deaths and sequence numbers are handled
  by ``sparkplug``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from plantpulse.collectors.admission import Accept
from plantpulse.schema import Duration, StrictModel

__all__ = [
    "JsonSubscription",
    "MqttSource",
    "MqttTls",
    "SparkplugOptions",
    "check_path",
    "check_topic_filter",
    "parse_path",
    "template_fields",
    "template_pattern",
]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH_TOKEN = re.compile(r"""\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\]""")


def check_topic_filter(topic: str) -> str:
    """MQTT rules: ``+`` fills a whole level, ``#`` only as the whole last level."""
    if not topic:
        raise ValueError("a topic filter cannot be empty")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{topic!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise ValueError(f"{topic!r}: '+' must be a whole level")
    if "\x00" in topic:
        raise ValueError("a topic filter cannot contain NUL")
    return topic


def parse_path(path: str) -> tuple[bool, tuple[str | int, ...]]:
    """Compile the path language (docs/mqtt.md) to ``(absolute, steps)``.

    ``$`` is the message; ``$.a.b[0]["k.x"]`` walks from the message root; ``a.b[0]`` walks
    from the current reading (the message itself unless ``array`` is set). Keys are names
    (letters, digits, ``_``, ``-``) or quoted in brackets; ``[n]`` indexes a list (negative
    from the end). Raises ValueError naming what is wrong."""
    text = path.strip()
    absolute = text.startswith("$")
    rest = text[1:] if absolute else "." + text
    if not absolute and not text:
        raise ValueError("a path cannot be empty (use $ for the whole message)")
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _PATH_TOKEN.match(rest, pos)
        if m is None:
            raise ValueError(f'path {path!r}: unexpected {rest[pos:]!r} (write a.b, [0] or ["key"])')
        if m.group(1) is not None:
            if not m.group(0).startswith("."):
                raise ValueError(f"path {path!r}: write .{m.group(1)} after a step")
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(int(m.group(2)))
        else:
            quoted = m.group(3)
            steps.append(re.sub(r"\\(.)", r"\1", quoted[1:-1]))
        pos = m.end()
    return absolute, tuple(steps)


def check_path(path: str) -> str:
    parse_path(path)
    return path.strip()


def template_fields(template: str) -> list[str]:
    """The placeholders of a tag template, in order (``{1}``, ``{-1}``, ``{topic}``, ``{$.id}``)."""
    return _PLACEHOLDER.findall(template)


def template_pattern(template: str) -> str:
    """A full-match regular expression for the tags a JSON ``tag`` template can produce: a topic
    level ``{N}`` is one level (no ``/``); ``{topic}`` and payload fields may hold anything."""
    out: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append("[^/]+" if re.fullmatch(r"-?\d+", m.group(1)) else ".+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


class MqttTls(StrictModel):
    """TLS to the broker. Without ``ca`` the system trust store verifies the broker."""

    ca: Path | None = Field(None, description="CA bundle (PEM) that signed the broker's certificate")
    cert: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key: Path | None = Field(None, description="private key (PEM) of the client certificate")
    insecure: bool = Field(False, description="skip hostname verification; for test benches only")

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be given together")
        return self


TimestampFormat = Literal["iso", "s", "ms", "us", "ns"]


class JsonSubscription(StrictModel):
    """One topic filter and how its JSON messages become samples."""

    topic: str = Field(description="topic filter; + matches one level, # the rest")
    tag: str = Field(
        description="tag template: {N} is topic level N (0-based, negative from the end), "
        "{topic} the whole topic, {path} a value of the reading; or a fixed name"
    )
    value: str = Field("$", description="path to the value in the reading")
    timestamp: str | None = Field(None, description="path to the timestamp; default: receive time")
    timestamp_format: TimestampFormat = Field("iso", description="iso, or epoch s | ms | us | ns")
    quality: str | None = Field(None, description="path to good/uncertain/bad, a bool or a status code")
    array: str | None = Field(None, description="path to a list of readings in one message")
    qos: Literal[0, 1] | None = Field(None, description="default: the source's qos")
    stale_after: Duration | None = Field(
        None, gt=0, description="watchdog for the tags of this subscription; default: the source's"
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return check_topic_filter(v)

    @field_validator("value", "timestamp", "quality", "array")
    @classmethod
    def _paths(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @field_validator("tag")
    @classmethod
    def _template(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("tag cannot be empty")
        if v.count("{") != v.count("}"):
            raise ValueError(f"tag template {v!r}: unbalanced braces")
        for name in template_fields(v):
            if name == "topic" or re.fullmatch(r"-?\d+", name):
                continue
            check_path(name)
        return v


class SparkplugOptions(StrictModel):
    """Which Sparkplug B edge nodes to follow and how their metrics are named as tags."""

    group: str = Field(description="Sparkplug group id")
    edge_nodes: list[str] = Field(default_factory=lambda: ["+"], description="edge node ids; + = all")
    devices: list[str] | None = Field(None, description="device ids to keep; null = all (and node metrics)")
    tag: str = Field(
        "{node}/{device}/{metric}",
        description="tag template: {group} {node} {device} {metric}; an empty {device} collapses",
    )
    metrics: dict[str, str] = Field(
        default_factory=dict, description="metric name -> tag template, overriding `tag` for that metric"
    )
    rebirth: bool = Field(True, description="publish NCMD Node Control/Rebirth on sequence gaps")
    rebirth_retry: Duration = Field(10_000_000_000, description="ask again at most this often")

    @field_validator("group", "edge_nodes", "devices")
    @classmethod
    def _ids(cls, v: str | list[str] | None) -> str | list[str] | None:
        for item in [v] if isinstance(v, str) else v or []:
            if not item or any(c in item for c in "/#") or ("+" in item and item != "+"):
                raise ValueError(f"{item!r}: a Sparkplug id is one topic level (or +)")
        return v

    @field_validator("tag")
    @classmethod
    def _template(cls, v: str) -> str:
        unknown = set(template_fields(v)) - {"group", "node", "device", "metric"}
        if unknown:
            raise ValueError(f"unknown placeholders {sorted(unknown)}; use group, node, device, metric")
        return v


class _Named(StrictModel):
    """A tag known before any message arrives (the shape the config-wide checks read)."""

    name: str
    unit: str | None = None
    description: str | None = None


class MqttSource(StrictModel):
    """``kind: mqtt``: one broker connection (JSON or Sparkplug B payloads)."""

    kind: Literal["mqtt"]
    name: str
    host: str
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version")
    client_id: str | None = Field(
        None, description="fixed id; required for a persistent session (default: plantpulse-<name>)"
    )
    persistent: bool = Field(
        True, description="keep the broker session (clean_start false) so QoS 1 messages wait for us"
    )
    session_expiry: Duration = Field(
        86_400_000_000_000, description="MQTT 5: how long the broker keeps our session while away"
    )
    keepalive: Duration = Field(
        30_000_000_000, description="MQTT keep-alive; a dead link is seen within 1.5x"
    )
    timeout: Duration = Field(5_000_000_000, description="connect/handshake timeout")
    heartbeat: Duration = Field(
        1_000_000_000, description="how often the watermark is advanced while connected"
    )
    lag: Duration = Field(
        2_000_000_000, description="heartbeats claim no message older than now - lag is still in flight"
    )
    tls: MqttTls | None = None
    username: str | None = None
    password: SecretStr | None = None
    qos: Literal[0, 1] = 1
    format: Literal["json", "sparkplug"] = "json"
    subscriptions: list[JsonSubscription] = Field(default_factory=list)
    sparkplug: SparkplugOptions | None = None
    stale_after: Duration | None = Field(
        None, gt=0, description="watchdog: any tag silent this long gets one bad marker per outage"
    )
    accept: Accept = Accept()

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str | None) -> str | None:
        if v is not None and not (1 <= len(v.encode()) <= 65535):
            raise ValueError("client_id must be 1..65535 bytes")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MqttSource:
        if self.format == "json":
            if not self.subscriptions:
                raise ValueError("format json needs at least one entry under subscriptions")
            if self.sparkplug is not None:
                raise ValueError("sparkplug options are for format sparkplug")
        else:
            if self.sparkplug is None:
                raise ValueError("format sparkplug needs a sparkplug: section (group at least)")
            if self.subscriptions:
                raise ValueError("subscriptions are for format json; sparkplug subscribes by group")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.heartbeat <= 0:
            raise ValueError("heartbeat must be positive")
        return self

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"plantpulse-{self.name}"

    @property
    def address(self) -> str:
        scheme = "mqtts" if self.tls is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def tags(self) -> list[_Named]:
        """The tag names known before any message: fixed ``tag:`` names (no placeholders).

        MQTT tags are mostly discovered from topics, so this is usually empty; it exists so the
        config-wide checks and the runner, which read ``source.tags``, work for every kind."""
        return [_Named(name=s.tag) for s in self.subscriptions if not template_fields(s.tag)]
