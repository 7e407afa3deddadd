"""Pure inference for ``discover mqtt``: sniffed messages in, MQTT source proposals out.

JSON. Each message is read once: numeric, boolean and numeric-string leaves are values; a
number that is an epoch time close to the receive time (s, ms, us or ns), or an ISO-8601
string, is a timestamp; ``good``/``uncertain``/``bad`` (or a boolean/integer under a key named
``quality``) is a quality; a list of objects holding numbers is an array of readings, in which
a string field present in every reading (``name``, ``signal``, ``tag``, ``id`` ... preferred)
names the signal. A topic keeps only what holds in every one of its messages (a path missing
from one message would make the collector reject that whole message). Topics with the same
depth and the same shape form a group: the levels that differ become ``+`` in the filter and
``{N}`` in the tag template, which starts at the last fixed level before the first varying one
(``plant/line1/+/+`` -> ``line1/{2}/{3}``). A group whose filter would also catch another
group's topics falls back to its exact topics.

One subscription per group, all in one source: one value is ``tag`` + ``value``; several
are ``fields`` sharing the timestamp and quality, with ``asset`` holding the topic levels (and
the reading's name field) and each tag ``{asset}/<leaf>``. When the values are exactly every
number, boolean and null of one nested object (the timestamp and quality aside) in every
message, the group is that pattern (``$.d.*``): topics whose objects hold different keys then
share it. Every subscription whose filter matches a topic decodes it, so a filter never
catches a topic of another group (it falls back to the group's exact topics).

Sparkplug B (``spBv1.0/...``). Messages go through the collector's own decoder, so the tags
proposed are exactly those the collector will make (``{node}/{device}/{metric}``); one source
per group, following the edge nodes seen.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from plantpulse.collectors.mqtt_config import SparkplugOptions, parse_path
from plantpulse.collectors.mqtt_json import DecodeError, topic_matches
from plantpulse.collectors.sparkplug import NAMESPACE, SparkplugDecoder, parse_topic
from plantpulse.discover.fragment import segment, unique
from plantpulse.timefmt import parse_ts

__all__ = [
    "Field",
    "Inference",
    "JsonGroup",
    "Message",
    "SparkplugGroup",
    "infer",
    "subscriptions",
]

_YEAR_NS = 365 * 86_400 * 1_000_000_000
_EPOCH_SCALES = (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000), ("ns", 1))
_TIME_KEYS = {"ts", "t", "time", "timestamp", "datetime", "date", "@timestamp", "_ts", "time_stamp"}
_QUALITY_KEYS = {"quality", "q", "qual", "qc"}
_QUALITY_WORDS = {"good", "uncertain", "bad"}
_NAME_KEYS = ("name", "signal", "tag", "id", "key", "metric", "channel", "point", "sensor", "variable")
_KEY = re.compile(r"[A-Za-z_][\w-]*\Z")
_RESERVED = {"asset", "field", "topic"}  # template names a payload key must be quoted as


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    received: int  # ns, the receive time (to tell epoch timestamps from values)


@dataclass(frozen=True)
class Field:
    """What a path holds: ``value``, ``timestamp`` (with ``format``), ``quality`` or ``name``."""

    path: str
    role: str
    format: str | None = None
    example: str = ""


@dataclass
class JsonGroup:
    """Topics of one depth and shape, and how a subscription reads them."""

    topics: list[str]
    messages: int
    values: list[Field]
    timestamp: Field | None = None
    quality: Field | None = None
    array: str | None = None
    name: Field | None = None  # in array mode: the reading's field naming the signal
    filters: list[str] = field(default_factory=list)
    tag: str = ""  # the template, before the per-value suffix ("": one per exact topic)
    skip: int = 0  # leading topic levels that are not part of tag names
    pattern: str | None = None  # ``$.d.*``: the values are every number of that object
    notes: list[str] = field(default_factory=list)

    @property
    def single(self) -> bool:
        """One value per reading: ``tag`` + ``value`` rather than ``fields``."""
        return len(self.values) == 1 and self.pattern is None

    def asset(self, base: str) -> str:
        """The topic levels' template, with the reading's name field for arrays of readings."""
        if self.name is None:
            return base
        key = self.name.path
        return f"{base}/{{{key if key not in _RESERVED else json.dumps([key])}}}"

    def leaves(self) -> list[str]:
        """Each value's last tag segment: the key for a pattern (its ``{field}``), else the
        path's steps joined (``$.press.bar`` -> ``press_bar``), made unique."""
        if self.pattern is not None:
            return [str(parse_path(v.path)[1][-1]) for v in self.values]
        return unique([_leaf(v.path) for v in self.values])

    def tags(self, base: str) -> list[str]:
        """The tag template of each value: the asset, then ``/leaf`` when there are several."""
        asset = self.asset(base)
        return [asset] if self.single else [f"{asset}/{leaf}" for leaf in self.leaves()]


@dataclass
class SparkplugGroup:
    group: str
    nodes: list[str]
    messages: int
    metrics: dict[str, str]  # tag -> example value
    notes: list[str] = field(default_factory=list)


@dataclass
class Inference:
    json: list[JsonGroup] = field(default_factory=list)
    sparkplug: list[SparkplugGroup] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> why nothing is proposed


def infer(messages: Sequence[Message], listened: str = "#") -> Inference:
    """Groups with their subscriptions' filters and templates, from what was heard on the
    filter ``listened``: its fixed leading levels (``factory`` of ``factory/#``) are a topic
    namespace, not an asset path, so tag names start below them."""
    out = Inference()
    by_topic: dict[str, list[Message]] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m)
    plain = {t: ms for t, ms in by_topic.items() if not t.startswith(NAMESPACE + "/")}
    out.sparkplug = _sparkplug([m for m in messages if m.topic.startswith(NAMESPACE + "/")], out)
    shapes: dict[tuple[Any, ...], list[tuple[str, _Shape]]] = {}
    for topic, msgs in sorted(plain.items()):
        shape = _topic_shape(msgs)
        if isinstance(shape, str):
            out.skipped[topic] = shape
            continue
        shapes.setdefault((len(topic.split("/")), *shape.key()), []).append((topic, shape))
    groups = [_group(items) for items in shapes.values()]
    for g in groups:
        g.messages = sum(len(by_topic[t]) for t in g.topics)
    groups.sort(key=lambda g: g.topics[0])
    universe = list(by_topic)
    fixed = 0
    for level in listened.split("/"):
        if level in ("+", "#"):
            break
        fixed += 1
    for g in groups:
        _place(g, universe=universe, skip=fixed)
    out.json = groups
    return out


def subscriptions(inference: Inference) -> list[dict[str, Any]]:
    """The ``subscriptions:`` of the JSON source: one per group and filter."""
    return [_subscription(g, f) for g in inference.json for f in g.filters]


def _subscription(g: JsonGroup, topic_filter: str) -> dict[str, Any]:
    base = _base_template(g, topic_filter)
    sub: dict[str, Any] = {"topic": topic_filter}
    if g.single:
        sub["tag"] = g.asset(base)
        if g.array is not None:
            sub["array"] = g.array
        sub["value"] = g.values[0].path
    else:
        sub["asset"] = g.asset(base)
        if g.array is not None:
            sub["array"] = g.array
        if g.pattern is not None:
            sub["fields"] = g.pattern  # tag: "{asset}/{field}", the default
        else:
            leaves = g.leaves()
            sub["fields"] = {
                _relative(v.path): f"{{asset}}/{leaf}" for v, leaf in zip(g.values, leaves, strict=True)
            }
    if g.timestamp is not None:
        sub["timestamp"] = g.timestamp.path
        if g.timestamp.format != "iso":
            sub["timestamp_format"] = g.timestamp.format
    if g.quality is not None:
        sub["quality"] = g.quality.path
    return sub


def _base_template(g: JsonGroup, topic_filter: str) -> str:
    """The topic levels part of the group's tags (``line1/{2}``), or, for a group written as
    exact topics, that topic's levels."""
    if g.tag:
        return g.tag
    levels = topic_filter.split("/")
    return "/".join(segment(level) for level in levels[min(g.skip, len(levels) - 1) :])


# -- one message --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """The paths of one message (or, merged, of every message of a topic)."""

    values: tuple[str, ...]
    nulls: frozenset[str]
    timestamp: tuple[str, str] | None
    quality: str | None
    array: str | None = None
    name: str | None = None
    examples: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    pattern: str | None = None  # the values are exactly what this fields pattern takes

    def key(self) -> tuple[Any, ...]:
        """What topics of one group share: a pattern (whatever keys its object holds), else
        the very same values."""
        if self.pattern is not None:
            return ("pattern", self.pattern, self.timestamp, self.quality)
        return (self.values, self.timestamp, self.quality, self.array, self.name)


def _message_shape(m: Message) -> _Shape | str:
    try:
        root = json.loads(m.payload)
    except (ValueError, RecursionError):
        return "not JSON"
    if _is_value(root):
        return _Shape(("$",), frozenset(), None, None, examples=(("$", _show(root)),))
    if isinstance(root, list):
        return _readings(root, "$", None, None, m.received) or "a JSON list without readings"
    if not isinstance(root, dict):
        return f"a JSON {type(root).__name__}"
    leaves = list(_leaves(root, ()))
    ts, quality, times = _times_and_quality(leaves, m.received, absolute=True)
    for steps, v in leaves:
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            found = _readings(v, _path(steps, absolute=True), ts, quality, m.received)
            if found is not None:
                return found
    values, nulls, examples = [], set(), []
    for steps, v in leaves:
        p = _path(steps, absolute=True)
        if p in times or p == quality:
            continue
        if v is None:
            nulls.add(p)
        elif _is_value(v):
            values.append(p)
            examples.append((p, _show(v)))
    if not values and not nulls:
        return "no numeric field"
    lists = [_path(s, absolute=True) for s, v in leaves if isinstance(v, list)]
    notes = tuple(f"{p}: a list without readings (not read)" for p in lists)
    own = {p for p in (ts[0] if ts else None, quality) if p is not None}
    pattern = _pattern(root, [s for s, _ in leaves if _path(s, absolute=True) in {*values, *nulls}], own)
    return _Shape(
        tuple(values), frozenset(nulls), ts, quality, examples=tuple(examples), notes=notes, pattern=pattern
    )


def _pattern(root: dict[str, Any], value_steps: list[tuple[str, ...]], own: set[str]) -> str | None:
    """``$.d.*`` when the values are the fields of one nested object and exactly what that
    pattern takes there (every number, boolean and null but the subscription's own timestamp
    and quality), under keys that are tag segments as they are (``{field}`` names the tag)."""
    parents = {steps[:-1] for steps in value_steps}
    if len(parents) != 1:
        return None
    parent = parents.pop()
    if not parent:
        return None  # a flat message: a mapping names its fields
    obj: Any = root
    for step in parent:
        obj = obj[step]
    takes = {
        k
        for k, v in obj.items()
        if (v is None or isinstance(v, bool | int | float)) and _path((*parent, k), absolute=True) not in own
    }
    keys = {steps[-1] for steps in value_steps}
    if takes != keys or any(segment(k) != k for k in keys):
        return None
    return _path(parent, absolute=True) + ".*"


def _readings(
    items: list[Any], array: str, ts: tuple[str, str] | None, quality: str | None, received: int
) -> _Shape | None:
    """A list of objects as readings: what every one of them holds."""
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    per_item = [list(_leaves(x, ())) for x in items]
    item_ts, item_q, times = _times_and_quality(per_item[0], received, absolute=False)
    common: dict[str, str] | None = None  # relative path -> kind, kept when every reading agrees
    examples: dict[str, str] = {}
    for leaves in per_item:
        kinds = {}
        for steps, v in leaves:
            p = _path(steps, absolute=False)
            kinds[p] = (
                "value" if _is_value(v) else "null" if v is None else "text" if isinstance(v, str) else ""
            )
            if _is_value(v):
                examples.setdefault(p, _show(v))
        common = kinds if common is None else {p: _merge(k, kinds.get(p)) for p, k in common.items()}
    assert common is not None
    skip = {*times, item_q or ""}
    values = tuple(p for p, k in common.items() if k == "value" and p not in skip)
    if not values:
        return None
    texts = [p for p, k in common.items() if k == "text" and p not in skip and _KEY.match(p)]
    name = next((p for p in _NAME_KEYS if p in texts), None)
    if name is None:
        varying = [p for p in texts if len({_get(x, p) for x in items}) > 1]
        name = varying[0] if varying else None
    return _Shape(
        values,
        frozenset(p for p, k in common.items() if k == "null"),
        item_ts or ts,
        item_q or quality,
        array=array,
        name=name,
        examples=tuple((p, examples[p]) for p in values if p in examples),
    )


def _merge(a: str, b: str | None) -> str:
    if b is None or "" in (a, b):
        return ""
    if {a, b} == {"value", "null"}:
        return "value"
    return a if a == b else ""


def _times_and_quality(
    leaves: list[tuple[tuple[str, ...], Any]], received: int, *, absolute: bool
) -> tuple[tuple[str, str] | None, str | None, set[str]]:
    """The timestamp (a time-named field first), the quality, and every field that reads as a
    time (none of them is proposed as a value)."""
    times: list[tuple[str, str, bool]] = []
    quality: str | None = None
    for steps, v in leaves:
        key = steps[-1].lower() if steps else ""
        p = _path(steps, absolute=absolute)
        fmt = _time_format(v, received, timey=key in _TIME_KEYS)
        if fmt is not None:
            times.append((p, fmt, key in _TIME_KEYS))
        elif quality is None and _is_quality(key, v):
            quality = p
    chosen = next((t for t in times if t[2]), times[0] if times else None)
    return (chosen[0], chosen[1]) if chosen else None, quality, {t[0] for t in times}


def _time_format(v: Any, received: int, *, timey: bool) -> str | None:
    """``iso``, ``s``, ``ms``, ``us`` or ``ns`` when ``v`` reads as a time near ``received``."""
    window = (10 if timey else 1) * _YEAR_NS
    if isinstance(v, str):
        if not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", v):
            return None
        try:
            return "iso" if abs(parse_ts(v) - received) < window else None
        except ValueError:
            return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        return None
    for fmt, scale in _EPOCH_SCALES:
        if abs(v * scale - received) < window:
            return fmt
    return None


def _is_quality(key: str, v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in _QUALITY_WORDS
    return key in _QUALITY_KEYS and (isinstance(v, bool) or (isinstance(v, int) and 0 <= v <= 0xFFFFFFFF))


def _is_value(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, int | float):
        return math.isfinite(v)
    if isinstance(v, str):
        try:
            return math.isfinite(float(v.strip()))
        except ValueError:
            return False
    return False


def _leaves(node: dict[str, Any], steps: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _leaves(v, (*steps, k))
        else:
            yield (*steps, k), v


def _path(steps: tuple[str, ...], *, absolute: bool) -> str:
    """Steps in the path language: ``$.a.b``, ``$["a b"]``, ``a.b`` (relative)."""
    out = "$" if absolute else ""
    for s in steps:
        if _KEY.match(s):
            out += f".{s}" if out else s
        else:
            out += "[" + json.dumps(s, ensure_ascii=False) + "]"
    return out or "$"


def _relative(path: str) -> str:
    """A field's path from the reading (``$.press.bar`` -> ``press.bar``): the message itself
    unless ``array`` is set, so a ``fields`` key reads as the payload's own key."""
    _, steps = parse_path(path)
    return _path(tuple(str(s) for s in steps), absolute=False)


def _leaf(path: str) -> str:
    """A value's path as one tag segment: ``$.press.bar`` -> ``press_bar``."""
    _, steps = parse_path(path)
    return segment("_".join(str(s) for s in steps)) if steps else "value"


def _get(item: dict[str, Any], key: str) -> Any:
    v = item.get(key)
    return v if isinstance(v, str | int | float) else None


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return json.dumps(v, ensure_ascii=False)[:24]


# -- one topic, one group -------------------------------------------------------------------------


def _topic_shape(msgs: Sequence[Message]) -> _Shape | str:
    shapes = [_message_shape(m) for m in msgs]
    bad = [s for s in shapes if isinstance(s, str)]
    if bad:
        return bad[0] if len(bad) == len(shapes) else f"{len(bad)} of {len(shapes)} messages: {bad[0]}"
    good = [s for s in shapes if isinstance(s, _Shape)]
    first = good[0]
    notes = list(dict.fromkeys(n for s in good for n in s.notes))
    if first.pattern is not None and all(s.key() == first.key() for s in good):
        # a pattern takes whatever keys each message holds: none of them is missing
        keys = dict.fromkeys(p for s in good for p in (*s.values, *sorted(s.nulls)))
        return _Shape(
            tuple(keys),
            frozenset(),
            first.timestamp,
            first.quality,
            examples=_examples(good),
            notes=tuple(notes),
            pattern=first.pattern,
        )
    if any((s.array, s.name) != (first.array, first.name) for s in good):
        return "messages of different layouts"
    seen_values = {p for s in good for p in s.values}
    values = tuple(
        p
        for p in dict.fromkeys(v for s in good for v in s.values)
        if all(p in s.values or p in s.nulls for s in good)
    )
    for p in sorted(seen_values - set(values)):
        n = sum(p in s.values or p in s.nulls for s in good)
        notes.append(
            f"{p} is in {n} of {len(good)} messages: not proposed (a missing field rejects the message)"
        )
    if not values:
        return "no numeric field in every message"
    ts = first.timestamp if all(s.timestamp == first.timestamp for s in good) else None
    quality = first.quality if all(s.quality == first.quality for s in good) else None
    return _Shape(values, frozenset(), ts, quality, first.array, first.name, _examples(good), tuple(notes))


def _examples(shapes: Iterable[_Shape]) -> tuple[tuple[str, str], ...]:
    """The first example of each path."""
    examples: dict[str, str] = {}
    for s in shapes:
        for p, e in s.examples:
            examples.setdefault(p, e)
    return tuple(examples.items())


def _group(items: list[tuple[str, _Shape]]) -> JsonGroup:
    topics = [t for t, _ in items]
    shape = items[0][1]
    examples = dict(_examples(s for _, s in items))
    ts = shape.timestamp
    values = list(dict.fromkeys(p for _, s in items for p in s.values))  # a pattern's keys differ by topic
    return JsonGroup(
        topics=topics,
        messages=0,
        values=[Field(p, "value", example=examples.get(p, "null")) for p in values],
        timestamp=Field(ts[0], "timestamp", ts[1]) if ts else None,
        quality=Field(shape.quality, "quality") if shape.quality else None,
        array=shape.array,
        name=Field(shape.name, "name") if shape.name else None,
        pattern=shape.pattern if len(values) > 1 else None,  # one key: a plain value
        notes=list(dict.fromkeys(n for _, s in items for n in s.notes)),
    )


def _place(g: JsonGroup, *, universe: list[str], skip: int) -> None:
    """The group's filter (``+`` where its topics differ) and tag template (the topic levels
    from ``skip`` on, at least the last); exact topics when the filter would also catch a topic
    heard outside the group (every matching subscription decodes a message: another group's
    would reject it for the paths it lacks)."""
    levels = [t.split("/") for t in g.topics]
    depth = len(levels[0])
    g.skip = start = min(skip, depth - 1)
    varying = [i for i in range(depth) if len({lv[i] for lv in levels}) > 1]
    if varying:
        general = "/".join("+" if i in varying else level for i, level in enumerate(levels[0]))
        mine = set(g.topics)
        split = general.split("/")
        if any(t not in mine and topic_matches(split, t.split("/")) for t in universe):
            g.filters = list(g.topics)
            g.notes.append(f"{general} would also catch other topics: one subscription per topic")
            return  # tag "": one per exact topic (_base_template)
        g.filters = [general]
    else:
        g.filters = list(g.topics)
    g.tag = "/".join(f"{{{i}}}" if i in varying else segment(levels[0][i]) for i in range(start, depth))


# -- Sparkplug B ----------------------------------------------------------------------------------


def _sparkplug(messages: Sequence[Message], out: Inference) -> list[SparkplugGroup]:
    groups: dict[str, list[Message]] = {}
    for m in messages:
        try:
            t = parse_topic(m.topic)
        except DecodeError as e:
            out.skipped[m.topic] = str(e)
            continue
        groups.setdefault(t.group, []).append(m)
    result: list[SparkplugGroup] = []
    for group, msgs in sorted(groups.items()):
        decoder = SparkplugDecoder(SparkplugOptions(group=group, rebirth=False))
        nodes: set[str] = set()
        metrics: dict[str, str] = {}
        notes: list[str] = []
        for m in msgs:
            nodes.add(m.topic.split("/")[3])
            try:
                decoded = decoder.decode(m.topic, m.payload, m.received)
            except DecodeError as e:
                notes.append(f"{m.topic}: {e}")
                continue
            for s in (*decoded.samples, *decoded.historical):
                metrics[s.tag] = "null" if math.isnan(s.value) else f"{s.value:.6g}"
            notes.extend(decoded.notes)
        if not metrics:
            notes.append("no birth heard, so no metric names: listen with --rebirth to ask for one")
        result.append(
            SparkplugGroup(
                group, sorted(nodes), len(msgs), dict(sorted(metrics.items())), list(dict.fromkeys(notes))
            )
        )
    return result
