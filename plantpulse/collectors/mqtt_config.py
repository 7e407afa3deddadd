"""The ``kind: mqtt`` source: broker, session, TLS and how payloads become tags (docs/mqtt.md).

Pure pydantic models (no paho import), so ``plant.yaml`` validates before any I/O. Two payload
formats share one connection model:

* ``format: json`` — ``subscriptions:`` map topic filters to tags with a small path language
  (see ``mqtt_json``): ``tag`` is a template over topic levels and payload fields, ``value``,
  ``timestamp`` and ``quality`` are paths, ``array`` names a list of readings in one message,
  ``fields`` turns several fields of one reading (a mapping, or every number under a
  ``path.*`` pattern) into several tags sharing its timestamp and quality.
* ``format: sparkplug`` — ``sparkplug:`` names the group, the edge nodes and devices to follow
  and how metric names become tags; births, aliases, deaths and sequence numbers are handled
  by ``sparkplug``; ``host_id`` makes plantpulse a Sparkplug 3.0 Host Application (STATE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from plantpulse.collectors.admission import Accept
from plantpulse.schema import Duration, StrictModel

__all__ = [
    "JsonSubscription",
    "MqttSource",
    "MqttTls",
    "PathSteps",
    "Placeholder",
    "SparkplugOptions",
    "check_path",
    "check_topic_filter",
    "parse_path",
    "parse_pattern",
    "parse_template",
    "template_fields",
    "template_pattern",
]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH_TOKEN = re.compile(r"""\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\]""")

PathSteps = tuple[bool, tuple[str | int, ...]]
"""A compiled path: ``(absolute, steps)``; absolute paths start at the message, others at the reading."""


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


def parse_path(path: str) -> PathSteps:
    """Compile the path language (docs/mqtt.md) to ``(absolute, steps)``.

    ``$`` is the message; ``$.a.b[0]["k.x"]`` walks from the message root; ``a.b[0]`` (or
    ``["k.x"]``) walks from the current reading (the message itself unless ``array`` is set).
    Keys are names (letters, digits, ``_``, ``-``) or quoted in brackets; ``[n]`` indexes a list
    (negative from the end). Raises ValueError naming what is wrong."""
    text = path.strip()
    absolute = text.startswith("$")
    rest = text[1:] if absolute else (text if text.startswith("[") else "." + text)
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


def parse_pattern(pattern: str) -> PathSteps:
    """A ``fields`` pattern: a path to an object followed by ``.*`` (``$.d.*``, ``values.*``,
    ``$.*``; ``*`` alone is the reading itself): every numeric field of that object."""
    text = pattern.strip()
    if text == "*":
        return False, ()
    if not text.endswith(".*"):
        raise ValueError(f"fields pattern {pattern!r} must end in .* (e.g. $.d.*), or map fields to tags")
    head = text[:-2]
    if "*" in head:
        raise ValueError(f"fields pattern {pattern!r}: only the last step may be *")
    return parse_path(head or "$")


def template_fields(template: str) -> list[str]:
    """The placeholders of a tag template, in order (``{1}``, ``{-1}``, ``{topic}``, ``{$.id}``)."""
    return _PLACEHOLDER.findall(template)


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{...}`` of a template: a topic level, the whole topic, the subscription's asset,
    the field's key (``fields``), or a path into the reading."""

    kind: Literal["level", "topic", "asset", "field", "path"]
    level: int = 0
    path: PathSteps | None = None


def parse_template(template: str) -> list[str | Placeholder]:
    """Literal text and placeholders, in order. ``{asset}`` and ``{field}`` are reserved names:
    a payload field called so is written ``{$.asset}`` (message root) or ``{["asset"]}``."""
    if template.count("{") != template.count("}"):
        raise ValueError(f"tag template {template!r}: unbalanced braces")
    out: list[str | Placeholder] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            out.append(template[pos : m.start()])
        name = m.group(1)
        if name in ("topic", "asset", "field"):
            out.append(Placeholder(name))  # type: ignore[arg-type]  # the literal is checked above
        elif re.fullmatch(r"-?\d+", name):
            out.append(Placeholder("level", level=int(name)))
        else:
            try:
                out.append(Placeholder("path", path=parse_path(name)))
            except ValueError as e:
                raise ValueError(f"tag template {template!r}: {e}") from None
        pos = m.end()
    if pos < len(template):
        out.append(template[pos:])
    return out


def template_pattern(template: str, *, asset: str | None = None, field: str | None = None) -> str:
    """A full-match regular expression for the tags a JSON tag template can produce: a topic
    level ``{N}`` is one level (no ``/``); ``{topic}`` and payload fields may hold anything;
    ``{asset}`` is the ``asset`` template expanded, ``{field}`` the known key when given."""
    out: list[str] = []
    for part in parse_template(template):
        if isinstance(part, str):
            out.append(re.escape(part))
        elif part.kind == "asset" and asset is not None:
            out.append(template_pattern(asset))
        elif part.kind == "field" and field is not None:
            out.append(re.escape(field))
        else:
            out.append("[^/]+" if part.kind == "level" else ".+")
    return "".join(out)


def _check_template(template: str, *, asset: bool, field: bool, what: str = "tag") -> str:
    if not template.strip():
        raise ValueError(f"{what} cannot be empty")
    for part in parse_template(template):
        if isinstance(part, Placeholder):
            if part.kind == "asset" and not asset:
                raise ValueError(
                    f"{what} {template!r} uses {{asset}}: set asset: (a template) on the subscription"
                )
            if part.kind == "field" and not field:
                raise ValueError(f"{what} {template!r} uses {{field}}, which only fields: defines")
    return template


def _fixed(template: str, replace: dict[str, str]) -> str:
    for name, text in replace.items():
        template = template.replace("{" + name + "}", text)
    return template


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
    """One topic filter and how its JSON messages become samples.

    Three forms: one value per reading (``tag`` + ``value``); several named fields per reading
    (``fields: {path: tag template}``); every numeric field of an object (``fields: "$.d.*"``
    with a ``tag`` template using ``{field}``). Keys are declared in checking order: each
    validator sees the keys above it, so every problem is reported at its own key."""

    topic: str = Field(description="topic filter; + matches one level, # the rest")
    asset: str | None = Field(
        None, description="asset template (topic levels, payload fields); {asset} in tag templates"
    )
    fields: dict[str, str] | str | None = Field(
        None,
        description="several tags per reading: {path: tag template}, or a pattern such as $.d.* "
        "(every numeric field of that object; tag then names each with {field})",
    )
    tag: str | None = Field(
        None,
        validate_default=True,
        description="tag template: {N} is topic level N (0-based, negative from the end), "
        "{topic} the whole topic, {asset} the asset, {field} the field's key, {path} a value "
        "of the reading; or a fixed name",
    )
    value: str = Field("$", description="path to the value in the reading (one value per reading)")
    exclude: list[str] = Field(default_factory=list, description="field keys a fields pattern does not take")
    partial: bool = Field(
        False, description="a missing value or field yields no sample instead of rejecting the message"
    )
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

    @field_validator("asset")
    @classmethod
    def _asset(cls, v: str | None) -> str | None:
        return None if v is None else _check_template(v, asset=False, field=False, what="asset")

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, str] | str | None, info: ValidationInfo) -> dict[str, str] | str | None:
        if isinstance(v, str):
            parse_pattern(v)
        elif v is not None:
            if not v:
                raise ValueError("fields needs at least one entry (path: tag template)")
            has_asset = info.data.get("asset") is not None
            problems: dict[str, str] = {}
            for path, template in v.items():
                try:
                    _check_field(path, template, asset=has_asset)
                except ValueError as e:
                    problems[path] = str(e)
            if problems:
                raise _at(problems)
        return v

    @field_validator("tag")
    @classmethod
    def _template(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "fields" not in info.data:
            return v  # fields itself is wrong: that error says it
        fields = info.data["fields"]
        has_asset = info.data.get("asset") is not None
        if isinstance(fields, dict):
            if v is not None:
                raise ValueError("with fields as a mapping each field names its tag; remove tag")
            return v
        if v is None:
            if isinstance(fields, str) and has_asset:
                return v  # the default, "{asset}/{field}"
            raise ValueError(
                "missing required key 'tag'"
                + (" (or set asset: to use the default {asset}/{field})" if isinstance(fields, str) else "")
            )
        _check_template(v, asset=has_asset, field=isinstance(fields, str))
        if isinstance(fields, str) and "{field}" not in v:
            raise ValueError(f"tag {v!r} must use {{field}}: the pattern {fields!r} yields one tag per field")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str, info: ValidationInfo) -> str:
        check_path(v)
        if info.data.get("fields") is not None and v.strip() != "$":
            raise ValueError("value is for one value per reading; with fields, each field is its own path")
        return v.strip()

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if v and not isinstance(info.data.get("fields"), str):
            raise ValueError("exclude is for a fields pattern (fields: $.d.*)")
        return v

    @field_validator("timestamp", "quality", "array")
    @classmethod
    def _paths(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @property
    def tag_template(self) -> str | None:
        """``tag``, or the default ``{asset}/{field}`` of a fields pattern (None for a mapping)."""
        if self.tag is None and isinstance(self.fields, str):
            return "{asset}/{field}"
        return self.tag

    def templates(self) -> list[tuple[str, str | None]]:
        """Every tag template with the field key it names (``{field}``), asset not expanded."""
        if isinstance(self.fields, dict):
            return [(t, _last_key(path)) for path, t in self.fields.items()]
        template = self.tag_template
        assert template is not None  # validated
        return [(template, None)]

    def tag_patterns(self) -> list[str]:
        """Full-match regular expressions for the tags this subscription can produce (the
        watchdog's ``stale_after`` per subscription)."""
        return [template_pattern(t, asset=self.asset, field=key) for t, key in self.templates()]

    def fixed_tags(self) -> list[str]:
        """Tags known before any message: templates with no placeholder left once the asset
        (itself fixed) and known field keys are filled in."""
        out: list[str] = []
        for template, key in self.templates():
            filled = _fixed(template, {"field": key} if key is not None else {})
            if "{asset}" in filled and self.asset is not None and not template_fields(self.asset):
                filled = _fixed(filled, {"asset": self.asset})
            if not template_fields(filled):
                out.append(filled)
        return out


def _check_field(path: str, template: str, *, asset: bool) -> None:
    check_path(path)
    if _last_key(path) is None and "{field}" in template:
        raise ValueError(f"{path!r} ends in an index, so {{field}} has no key to name")
    _check_template(template, asset=asset, field=True)


def _at(problems: dict[str, str]) -> ValidationError:
    """Errors located at keys of the mapping being validated (so ``plantpulse check`` points at
    each wrong entry of ``fields:``, not at ``fields``)."""
    return ValidationError.from_exception_data(
        "fields",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=(key,),
                input=key,
            )
            for key, message in problems.items()
        ],
    )


def _last_key(path: str) -> str | None:
    """The key a field path ends in (``d.current`` -> ``current``), None for an index."""
    steps = parse_path(path)[1]
    last = steps[-1] if steps else None
    return last if isinstance(last, str) else None


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
    host_id: str | None = Field(
        None,
        description="act as the Sparkplug 3.0 Host Application with this id: retained STATE "
        "birth/will on spBv1.0/STATE/<host_id>, so edge nodes with this Primary Host ID send to us",
    )

    @field_validator("group", "edge_nodes", "devices")
    @classmethod
    def _ids(cls, v: str | list[str] | None) -> str | list[str] | None:
        for item in [v] if isinstance(v, str) else v or []:
            if not item or any(c in item for c in "/#") or ("+" in item and item != "+"):
                raise ValueError(f"{item!r}: a Sparkplug id is one topic level (or +)")
        return v

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in "/#+")):
            raise ValueError(f"{v!r}: a Sparkplug host id is one topic level without + or #")
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

    @model_validator(mode="before")
    @classmethod
    def _host_session(cls, data: Any) -> Any:
        """A Sparkplug host application connects with a clean session (Sparkplug 3.0: every
        client sets Clean Session; the edge nodes hold data while their primary host is away)."""
        if isinstance(data, dict) and "persistent" not in data:
            spb = data.get("sparkplug")
            if isinstance(spb, dict) and spb.get("host_id") is not None:
                return {**data, "persistent": False}
        return data

    @field_validator("sparkplug")
    @classmethod
    def _clean_host(cls, v: SparkplugOptions | None, info: ValidationInfo) -> SparkplugOptions | None:
        if v is not None and v.host_id is not None and info.data.get("persistent"):
            raise ValueError(
                "a Sparkplug host application (host_id) connects with a clean session: "
                "remove persistent: true"
            )
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
        return [_Named(name=tag) for s in self.subscriptions for tag in s.fixed_tags()]

    @property
    def state_topic(self) -> str | None:
        """``spBv1.0/STATE/<host_id>`` when this source is a Sparkplug host application."""
        if self.sparkplug is None or self.sparkplug.host_id is None:
            return None
        return f"spBv1.0/STATE/{self.sparkplug.host_id}"
