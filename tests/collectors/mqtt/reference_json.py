"""The JSON decoder as it was before columnar decoding (plantpulse 0.1, ``mqtt_json.py``): the
oracle the new decoder is fuzzed against (``test_mqtt_fuzz.py``) on the shapes both support,
i.e. one value per reading (``tag`` + ``value``, optionally ``array``) and one subscription per
topic. Kept verbatim apart from the names; it uses the standard-library ``json`` parser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from plantpulse.collectors.mqtt_config import (
    JsonSubscription,
    TimestampFormat,
    parse_path,
    template_fields,
)
from plantpulse.collectors.mqtt_json import DecodeError, topic_matches
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import parse_ts

__all__ = ["ReferenceJsonDecoder"]

_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_QUALITY = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}
_MAX_TS = 2**63 - 1


Path = tuple[bool, tuple[str | int, ...]]


def _walk(path: Path, root: Any, item: Any) -> Any:
    absolute, steps = path
    node = root if absolute else item
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                raise KeyError(step)
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                raise KeyError(step)
            node = node[step]
    return node


def _show(path: Path) -> str:
    absolute, steps = path
    text = "$" if absolute else ""
    for s in steps:
        text += f"[{s}]" if isinstance(s, int) else (f".{s}" if text else s)
    return text or "$"


@dataclass(frozen=True, slots=True)
class _Part:
    literal: str
    level: int | None = None
    whole_topic: bool = False
    path: Path | None = None


class _Compiled:
    """One subscription with its filter split and its paths and template parsed once."""

    def __init__(self, sub: JsonSubscription) -> None:
        self.sub = sub
        self.levels = tuple(sub.topic.split("/"))
        self.value = parse_path(sub.value)
        self.timestamp = parse_path(sub.timestamp) if sub.timestamp else None
        self.ts_format: TimestampFormat = sub.timestamp_format
        self.quality = parse_path(sub.quality) if sub.quality else None
        self.array = parse_path(sub.array) if sub.array else None
        self.parts: list[_Part] = []
        self.fixed_tag: str | None = None
        assert sub.tag is not None, "the reference knows one value per reading only"
        if not template_fields(sub.tag):
            self.fixed_tag = sub.tag
        else:
            rest = sub.tag
            while "{" in rest:
                head, _, tail = rest.partition("{")
                name, _, rest = tail.partition("}")
                if head:
                    self.parts.append(_Part(head))
                if name == "topic":
                    self.parts.append(_Part("", whole_topic=True))
                elif name.lstrip("-").isdigit():
                    self.parts.append(_Part("", level=int(name)))
                else:
                    self.parts.append(_Part("", path=parse_path(name)))
            if rest:
                self.parts.append(_Part(rest))
        self.item_dependent_tag = any(p.path is not None for p in self.parts)
        # the fast path (``JsonDecoder._fast``): what can be looked up per reading with one
        # dict access, and per-message work done once per message
        self.value_key = _one_key(self.value)
        paths = [p.path for p in self.parts if p.path is not None]
        self.tag_key = _one_key(paths[0]) if len(paths) == 1 else None
        self.fast = (
            self.array is not None
            and self.value_key is not None
            and (self.timestamp is None or self.timestamp[0])
            and (self.quality is None or self.quality[0])
            and (not self.item_dependent_tag or self.tag_key is not None)
        )
        self.tags: dict[str, dict[str | tuple[type, int], str]] = {}
        """topic -> tag field value -> tag: templates are expanded and checked once per shape."""

    def tag(self, topic: str, levels: list[str], root: Any, item: Any) -> str:
        if self.fixed_tag is not None:
            return self.fixed_tag
        out: list[str] = []
        for p in self.parts:
            if p.level is not None:
                if not -len(levels) <= p.level < len(levels):
                    raise DecodeError(
                        "tag", f"tag template needs topic level {p.level}, topic has {len(levels)}"
                    )
                out.append(levels[p.level])
            elif p.whole_topic:
                out.append(topic)
            elif p.path is not None:
                try:
                    v = _walk(p.path, root, item)
                except KeyError:
                    raise DecodeError("tag", f"tag template: no {_show(p.path)} in the reading") from None
                if isinstance(v, bool) or not isinstance(v, str | int):
                    raise DecodeError("tag", f"tag template: {_show(p.path)} is not a string or integer")
                out.append(str(v))
            else:
                out.append(p.literal)
        tag = "".join(out)
        if not tag or tag.startswith("/") or tag.endswith("/") or "//" in tag:
            raise DecodeError("tag", f"tag {tag!r} from the template is not a valid tag name")
        return tag


def _one_key(path: Path) -> str | None:
    """The key of a relative one-step path (``value``, ``signal``), else None."""
    absolute, steps = path
    return steps[0] if not absolute and len(steps) == 1 and isinstance(steps[0], str) else None


_TAG_CACHE = 10_000  # topics, and field values per topic, whose expanded tags are remembered


def _value(v: Any, where: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        try:
            f = float(v)
        except OverflowError:
            raise DecodeError("value", f"{where}: value out of range") from None
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            raise DecodeError("value", f"{where}: {v[:40]!r} is not a number") from None
    else:
        raise DecodeError("value", f"{where}: a {type(v).__name__} is not a number")
    if math.isinf(f):
        raise DecodeError("value", f"{where}: infinite value")
    return f


def _quality(q: Any, where: str) -> Quality:
    if isinstance(q, bool):
        return Quality.GOOD if q else Quality.BAD
    if isinstance(q, str):
        found = _QUALITY.get(q.strip().lower())
        if found is None:
            raise DecodeError("quality", f"{where}: {q[:40]!r} is not good, uncertain or bad")
        return found
    if isinstance(q, int) and 0 <= q <= 0xFFFFFFFF:
        severity = (q >> 30) & 0b11
        return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD
    raise DecodeError("quality", f"{where}: {q!r} is not a quality")


def _timestamp(v: Any, fmt: TimestampFormat, where: str) -> int:
    try:
        if fmt == "iso":
            if not isinstance(v, str):
                raise DecodeError(
                    "timestamp", f"{where}: expected an ISO-8601 string, got {type(v).__name__}"
                )
            ts = parse_ts(v)
        else:
            if isinstance(v, bool):
                raise DecodeError("timestamp", f"{where}: a boolean is not a timestamp")
            if isinstance(v, str):
                v = float(v) if any(c in v for c in ".eE") else int(v)
            if isinstance(v, int):
                ts = v * _SCALE[fmt]
            elif isinstance(v, float) and math.isfinite(v):
                # via the shortest decimal repr: 1767254400.25 s must be ...250000000 ns, not ...249999872
                ts = int((Decimal(repr(v)) * _SCALE[fmt]).to_integral_value(ROUND_HALF_EVEN))
            else:
                raise DecodeError("timestamp", f"{where}: {v!r} is not an epoch number")
    except (ValueError, OverflowError, ArithmeticError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError("timestamp", f"{where}: {str(v)[:40]!r} is not a timestamp ({fmt})") from None
    if not 0 <= ts <= _MAX_TS:
        raise DecodeError("timestamp", f"{where}: {str(v)[:40]!r} is out of range")
    return ts


class ReferenceJsonDecoder:
    """Decodes messages for a list of JSON subscriptions (pure; reusable, no state)."""

    def __init__(self, subscriptions: Sequence[JsonSubscription]) -> None:
        self._subs = [_Compiled(s) for s in subscriptions]

    def subscription_for(self, topic: str) -> JsonSubscription | None:
        levels = topic.split("/")
        for c in self._subs:
            if topic_matches(c.levels, levels):
                return c.sub
        return None

    def decode(self, topic: str, payload: bytes | bytearray, received_ns: int) -> list[Sample]:
        """Samples of one message, or DecodeError (whole message rejected: no partial batches,
        so a malformed reading never hides behind good ones)."""
        levels = topic.split("/")
        for c in self._subs:
            if topic_matches(c.levels, levels):
                return self._decode(c, topic, levels, payload, received_ns)
        raise DecodeError("topic", f"no subscription matches topic {topic[:200]!r}")

    def _decode(
        self, c: _Compiled, topic: str, levels: list[str], payload: bytes | bytearray, received_ns: int
    ) -> list[Sample]:
        try:
            root = json.loads(payload)
        except (ValueError, RecursionError) as e:  # JSONDecodeError and bad UTF-8 are ValueErrors
            raise DecodeError("json", f"not JSON: {str(e)[:120]}") from None
        if c.array is not None:
            try:
                items = _walk(c.array, root, root)
            except KeyError:
                raise DecodeError("path", f"no {_show(c.array)} in the message") from None
            if not isinstance(items, list):
                raise DecodeError("path", f"{_show(c.array)} is a {type(items).__name__}, not a list")
            if c.fast:
                try:
                    return self._fast(c, topic, levels, root, items, received_ns)
                except (DecodeError, LookupError, TypeError):
                    pass  # the general loop below names the reading and the cause
        else:
            items = [root]
        fixed_tag = None if c.item_dependent_tag else c.tag(topic, levels, root, root)
        out: list[Sample] = []
        for i, item in enumerate(items):
            where = f"reading {i}" if c.array is not None else "message"
            tag = fixed_tag if fixed_tag is not None else c.tag(topic, levels, root, item)
            try:
                raw = _walk(c.value, root, item)
            except KeyError:
                raise DecodeError("path", f"{where}: no value at {_show(c.value)}") from None
            value = _value(raw, where)
            ts = received_ns
            if c.timestamp is not None:
                try:
                    ts_raw = _walk(c.timestamp, root, item)
                except KeyError:
                    raise DecodeError("path", f"{where}: no timestamp at {_show(c.timestamp)}") from None
                ts = _timestamp(ts_raw, c.ts_format, where)
            quality = Quality.GOOD
            if c.quality is not None:
                try:
                    q_raw = _walk(c.quality, root, item)
                except KeyError:
                    raise DecodeError("path", f"{where}: no quality at {_show(c.quality)}") from None
                quality = _quality(q_raw, where)
            out.append(Sample(ts, tag, value, quality))
        return out

    def _fast(  # noqa: PLR0917 (a private hot path: positional on purpose)
        self, c: _Compiled, topic: str, levels: list[str], root: Any, items: list[Any], received_ns: int
    ) -> list[Sample]:
        """Arrays of flat readings: timestamp and quality once per message, the value by one
        key, the tag from a per-topic cache of expanded templates. Raises on anything unusual
        and the caller falls back to the general loop, which reports it exactly."""
        ts = received_ns
        if c.timestamp is not None:
            ts = _timestamp(_walk(c.timestamp, root, root), c.ts_format, "message")
        quality = Quality.GOOD
        if c.quality is not None:
            quality = _quality(_walk(c.quality, root, root), "message")
        vkey = c.value_key
        assert vkey is not None
        out: list[Sample] = []
        append = out.append
        if not c.item_dependent_tag:
            tag = c.tag(topic, levels, root, root)
            for item in items:
                raw = item[vkey]
                value = raw if type(raw) is float and raw - raw == 0.0 else _value(raw, "")
                append(Sample(ts, tag, value, quality))
            return out
        tkey = c.tag_key
        assert tkey is not None
        tags = c.tags.get(topic)
        if tags is None:
            if len(c.tags) >= _TAG_CACHE:
                c.tags.clear()  # bounded: a flood of one-off topics only costs re-expansion
            tags = c.tags[topic] = {}
        for item in items:
            field = item[tkey]
            key: str | tuple[type, int] = field if type(field) is str else (type(field), field)
            known = tags.get(key)
            if known is None:
                known = c.tag(topic, levels, root, item)
                if len(tags) < _TAG_CACHE:
                    tags[key] = known
            raw = item[vkey]
            value = raw if type(raw) is float and raw - raw == 0.0 else _value(raw, "")
            append(Sample(ts, known, value, quality))
        return out
