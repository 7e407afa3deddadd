"""Pure decoding of JSON MQTT messages into columns: (topic, payload, receive time) -> rows.

No I/O and no clock: the collector passes the receive time, so golden cases and fuzzing are
exact. Every way a message can be wrong raises ``DecodeError`` (never anything else), which
the collector counts per topic and keeps for inspection; the collector never stops on one.

Rules (docs/mqtt.md):

* Every subscription whose filter matches the topic decodes the message, in file order, each
  taking its part: a value an earlier matching subscription already turned into a tag (the
  same path, written the same way) is not taken again, and a fields pattern skips the keys
  taken before it. So a specific entry ahead of a catch-all ``#`` keeps what it reads, and a
  pattern after a mapping takes the rest of the object.
* One bad part rejects the whole message (no partial batches: a malformed reading never hides
  behind good ones); ``partial: true`` makes a missing value or field yield nothing instead.
* ``array`` set: each element of that list is one reading; relative paths start at the
  element, ``$`` paths at the message (a batch-level timestamp is ``$.ts``).
* ``fields``: several tags per reading, one timestamp and quality for all of them; a pattern
  (``$.d.*``) takes every number, boolean and null of the object except the keys named by
  ``exclude`` and the subscription's own timestamp and quality.
* Values: numbers, booleans (1/0) and numeric strings; ``null`` is a bad sample (the device
  said "no value"), anything else is malformed. JSON is strict RFC 8259 UTF-8 (no ``NaN``).
* Quality: ``good``/``uncertain``/``bad`` (any case), a boolean (true = good), or an integer
  OPC UA StatusCode (severity bits: 0 good, 0x40000000 uncertain, 0x80000000 bad).
* Timestamps: ``iso`` (with offset or Z; naive = UTC) or epoch ``s``/``ms``/``us``/``ns``
  numbers; no timestamp path means the receive time.

Speed (decoding runs at wire speed, once per message, on the event loop): msgspec parses
(see benchmarks/bench_json.py); the topic -> subscriptions -> fields -> tag ids resolution is
compiled once per topic into a ``_Route`` (cached, bounded); rows go straight into
``Columns``: no ``Sample`` object is made between the socket and the batch. Routes whose
paths are all plain keys decode with a typed msgspec decoder generated for that shape
(unknown keys skipped without building objects) and fall back to the generic walk when a
message does not fit it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any

import msgspec
import numpy as np

from plantpulse.collectors.columns import Columns, to_samples
from plantpulse.collectors.mqtt_config import (
    JsonSubscription,
    PathSteps,
    Placeholder,
    TimestampFormat,
    parse_path,
    parse_pattern,
    parse_template,
)
from plantpulse.samples import Quality, Sample, TagRegistry
from plantpulse.timefmt import parse_ts

__all__ = ["DecodeError", "JsonDecoder", "topic_matches"]

_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_QUALITY = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}
_MAX_TS = 2**63 - 1
_MAX_ROUTES = 10_000  # topics whose compiled route is kept; beyond that the older half goes
_TAG_CACHE = 10_000  # expanded tags remembered per route and template
_MISSING: Any = msgspec.UNSET  # what a getter returns for an absent path (a typed field's default too)
_JSON = msgspec.json.Decoder()
_NAN = math.nan
_BIG_INT = 1 << 1000  # ints below this convert to float without overflowing


class DecodeError(ValueError):
    """A message that cannot become samples; ``cause`` is a short machine-readable reason
    (``json``, ``path``, ``value``, ``timestamp``, ``quality``, ``tag``, ``topic``, ``protobuf``)."""

    def __init__(self, cause: str, message: str) -> None:
        self.cause = cause
        super().__init__(message)


def topic_matches(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest; ``$``-topics never match a
    leading wildcard, as brokers do)."""
    if topic_levels and topic_levels[0].startswith("$") and filter_levels and filter_levels[0] in "+#":
        return False
    for i, f in enumerate(filter_levels):
        if f == "#":
            return True
        if i >= len(topic_levels) or (f != "+" and f != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


# -- values ---------------------------------------------------------------------------------------


def _value(v: Any) -> float:
    if v is None:
        return _NAN
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        try:
            f = float(v)
        except OverflowError:
            raise DecodeError("value", "value out of range") from None
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            raise DecodeError("value", f"{v[:40]!r} is not a number") from None
    else:
        raise DecodeError("value", f"a {type(v).__name__} is not a number")
    if math.isinf(f):
        raise DecodeError("value", "infinite value")
    return f


def _quality(q: Any) -> int:
    if isinstance(q, bool):
        return Quality.GOOD if q else Quality.BAD
    if isinstance(q, str):
        found = _QUALITY.get(q) or _QUALITY.get(q.strip().lower())
        if found is None:
            raise DecodeError("quality", f"{q[:40]!r} is not good, uncertain or bad")
        return found
    if isinstance(q, int) and 0 <= q <= 0xFFFFFFFF:
        severity = (q >> 30) & 0b11
        return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD
    raise DecodeError("quality", f"{q!r} is not a quality")


def _timestamp(v: Any, fmt: TimestampFormat) -> int:
    if type(v) is int and fmt != "iso" and 0 <= v <= _MAX_TS // _SCALE[fmt]:
        return v * _SCALE[fmt]  # the common case: epoch integers
    try:
        if fmt == "iso":
            if not isinstance(v, str):
                raise DecodeError("timestamp", f"expected an ISO-8601 string, got {type(v).__name__}")
            ts = parse_ts(v)
        else:
            if isinstance(v, bool):
                raise DecodeError("timestamp", "a boolean is not a timestamp")
            if isinstance(v, str):
                v = float(v) if any(c in v for c in ".eE") else int(v)
            if isinstance(v, int):
                ts = v * _SCALE[fmt]
            elif isinstance(v, float) and math.isfinite(v):
                # via the shortest decimal repr: 1767254400.25 s must be ...250000000 ns, not ...249999872
                ts = int((Decimal(repr(v)) * _SCALE[fmt]).to_integral_value(ROUND_HALF_EVEN))
            else:
                raise DecodeError("timestamp", f"{v!r} is not an epoch number")
    except (ValueError, OverflowError, ArithmeticError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError("timestamp", f"{str(v)[:40]!r} is not a timestamp ({fmt})") from None
    if not 0 <= ts <= _MAX_TS:
        raise DecodeError("timestamp", f"{str(v)[:40]!r} is out of range")
    return ts


# -- paths ----------------------------------------------------------------------------------------

Getter = Callable[[Any, Any], Any]
"""``(message, reading) -> value``, or ``_MISSING`` when the path is absent."""


def _show(path: PathSteps) -> str:
    absolute, steps = path
    text = "$" if absolute else ""
    for s in steps:
        text += f"[{s}]" if isinstance(s, int) else (f".{s}" if text else s)
    return text or "$"


def _dict_getter(path: PathSteps) -> Getter:
    """A getter over parsed JSON (dicts and lists), specialised for the common one-key path."""
    absolute, steps = path
    if not steps:
        return (lambda root, item: root) if absolute else (lambda root, item: item)
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]
        if absolute:
            return lambda root, item: root.get(key, _MISSING) if type(root) is dict else _MISSING
        return lambda root, item: item.get(key, _MISSING) if type(item) is dict else _MISSING

    def walk(root: Any, item: Any) -> Any:
        node = root if absolute else item
        for step in steps:
            if type(step) is int:
                if type(node) is not list or not -len(node) <= step < len(node):
                    return _MISSING
                node = node[step]
            elif type(node) is dict:
                node = node.get(step, _MISSING)
                if node is _MISSING:
                    return _MISSING
            else:
                return _MISSING
        return node

    return walk


def _location(path: PathSteps, array: PathSteps | None) -> tuple[Any, ...]:
    """Where a value sits in the message, for "each subscription takes its part"."""
    absolute, steps = path
    if absolute or array is None:
        return ("$", *steps)
    return ("$", *array[1], "[*]", *steps)


# -- subscriptions, compiled once -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One value a subscription takes from each reading, and the template naming its tag."""

    path: PathSteps
    key: str | None  # what {field} means for it
    template: tuple[str | Placeholder, ...]
    location: tuple[Any, ...]


class _Sub:
    """One subscription with its filter split and its paths and templates parsed once."""

    def __init__(self, sub: JsonSubscription) -> None:
        self.sub = sub
        self.levels = tuple(sub.topic.split("/"))
        self.array = parse_path(sub.array) if sub.array else None
        self.timestamp = parse_path(sub.timestamp) if sub.timestamp else None
        self.ts_format: TimestampFormat = sub.timestamp_format
        self.quality = parse_path(sub.quality) if sub.quality else None
        self.partial = sub.partial
        self.asset = tuple(parse_template(sub.asset)) if sub.asset is not None else ()
        self.fields: list[_Field] = []
        self.pattern: PathSteps | None = None
        self.pattern_template: tuple[str | Placeholder, ...] = ()
        if isinstance(sub.fields, dict):
            for text, template in sub.fields.items():
                path = parse_path(text)
                last = path[1][-1] if path[1] else None
                key = last if isinstance(last, str) else None
                self.fields.append(_Field(path, key, self._expand(template), _location(path, self.array)))
        elif isinstance(sub.fields, str):
            self.pattern = parse_pattern(sub.fields)
            pattern_tag = sub.tag_template
            assert pattern_tag is not None  # validated
            self.pattern_template = self._expand(pattern_tag)
        else:
            assert sub.tag is not None  # validated
            path = parse_path(sub.value)
            self.fields.append(_Field(path, None, self._expand(sub.tag), _location(path, self.array)))
        self.pattern_location = _location(self.pattern, self.array) if self.pattern is not None else None
        # a pattern never takes the subscription's own timestamp and quality
        self.exclude = set(sub.exclude)
        for own in (self.timestamp, self.quality):
            if own is not None and self.pattern_location is not None:
                loc = _location(own, self.array)
                if loc[:-1] == self.pattern_location and isinstance(loc[-1], str):
                    self.exclude.add(loc[-1])

    def _expand(self, template: str) -> tuple[str | Placeholder, ...]:
        """Parse a template with ``{asset}`` replaced by the asset template's parts."""
        out: list[str | Placeholder] = []
        for part in parse_template(template):
            if isinstance(part, Placeholder) and part.kind == "asset":
                out.extend(self.asset)
            else:
                out.append(part)
        return tuple(out)

    def paths(self) -> Iterable[PathSteps]:
        """Every path a message is read at (for the typed decoder of a route)."""
        for f in self.fields:
            yield f.path
            yield from _template_paths(f.template)
        for p in (self.array, self.timestamp, self.quality, self.pattern):
            if p is not None:
                yield p
        yield from _template_paths(self.pattern_template)


def _template_paths(template: Iterable[str | Placeholder]) -> Iterable[PathSteps]:
    for part in template:
        if isinstance(part, Placeholder) and part.path is not None:
            yield part.path


# -- routes: one per topic ------------------------------------------------------------------------


class _Tagger:
    """A tag template bound to one topic: topic levels filled in, payload paths (and the field
    key) looked up per reading, each expanded tag checked and interned once (bounded cache)."""

    __slots__ = ("by_value", "cache", "fixed", "parts", "paths", "single", "tags")

    def __init__(self, parts: list[str | PathSteps | None], tags: TagRegistry, fixed: int | None) -> None:
        self.parts = parts  # text, a payload path, or None for {field}
        self.paths = [p for p in parts if isinstance(p, tuple)]
        self.single = self.paths[0] if len(self.paths) == 1 and None not in parts else None
        """The one payload path of a template like ``line1/{signal}``: ``by_value`` maps its
        string values to tag ids, so a column of readings maps in one C-level pass."""
        self.tags = tags
        self.fixed = fixed
        self.cache: dict[Any, int] = {}
        self.by_value: dict[str, int] = {}

    def id(self, root: Any, item: Any, key: str | None, get: dict[PathSteps, Getter]) -> int:
        """The tag id for one reading (``get``: the plan's getters of the payload paths)."""
        if self.fixed is not None:
            return self.fixed
        ck: Any = key
        for path in self.paths:
            v = get[path](root, item)
            if type(v) is str:
                ck = (ck, v)
            elif type(v) is int:
                ck = (ck, int, v)  # 1 and "1" name the same tag, but True is refused
            elif v is _MISSING:
                raise DecodeError("tag", f"tag template: no {_show(path)} in the reading")
            else:
                raise DecodeError("tag", f"tag template: {_show(path)} is not a string or integer")
        found = self.cache.get(ck)
        if found is not None:
            return found
        text = "".join(
            (key or "") if p is None else p if isinstance(p, str) else str(get[p](root, item))
            for p in self.parts
        )
        tid = self.tags.id(_checked(text))
        if len(self.cache) < _TAG_CACHE:
            self.cache[ck] = tid
            if self.single is not None and type(ck[1]) is str and len(ck) == 2:
                self.by_value[ck[1]] = tid
        return tid


def _checked(tag: str) -> str:
    if not tag or tag.startswith("/") or tag.endswith("/") or "//" in tag:
        raise DecodeError("tag", f"tag {tag!r} from the template is not a valid tag name")
    return tag


@dataclass(slots=True)
class _Part:
    """What one subscription takes from messages on one topic."""

    sub: _Sub
    values: list[tuple[_Field, _Tagger]]
    pattern_exclude: frozenset[str] = frozenset()
    pattern_tagger: _Tagger | None = None


Fetch = Callable[[Any], Any]
"""A C-level getter of one reading (``itemgetter``, ``attrgetter``); raises when absent."""
MakeGetter = Callable[[PathSteps, PathSteps | None], Getter]
MakeFetch = Callable[[PathSteps], Fetch | None]


class _Plan:
    """One part of a route with the getters of one decoding mode (parsed JSON or typed structs)."""

    __slots__ = (
        "array",
        "columns",
        "exclude",
        "fields",
        "pattern",
        "q",
        "q_item",
        "sub",
        "tag_paths",
        "tagger",
        "ts",
        "ts_item",
    )  # fmt: skip

    def __init__(self, part: _Part, make: MakeGetter, fetch: MakeFetch) -> None:
        s = self.sub = part.sub
        array = s.array
        self.array = make(array, None) if array is not None else None
        self.ts = make(s.timestamp, array) if s.timestamp is not None else None
        self.q = make(s.quality, array) if s.quality is not None else None
        # relative timestamp/quality paths inside an array are read per reading, else once
        self.ts_item = array is not None and s.timestamp is not None and not s.timestamp[0]
        self.q_item = array is not None and s.quality is not None and not s.quality[0]
        self.fields = tuple((make(f.path, array), f, tagger) for f, tagger in part.values)
        self.tagger = part.pattern_tagger
        self.pattern = make(s.pattern, array) if s.pattern is not None and self.tagger is not None else None
        self.exclude = part.pattern_exclude
        taggers = [t for _, t in part.values] + ([self.tagger] if self.tagger is not None else [])
        self.tag_paths = {path: make(path, array) for t in taggers for path in t.paths}
        self.columns = self._columns(part, fetch)

    def _columns(
        self, part: _Part, fetch: MakeFetch
    ) -> tuple[tuple[Fetch, _Tagger, Fetch | None], ...] | None:
        """Arrays of readings whose values and tags map column-wise (``_take_columns``)."""
        if self.array is None or self.ts_item or self.q_item or self.pattern is not None or not part.values:
            return None
        out = []
        for f, tagger in part.values:
            value = fetch(f.path) if not f.path[0] else None
            tag = None
            if tagger.fixed is None:
                tag = fetch(tagger.single) if tagger.single is not None and not tagger.single[0] else None
                if tag is None:
                    return None
            if value is None:
                return None
            out.append((value, tagger, tag))
        return tuple(out)

    def run(self, cols: Columns, root: Any, received: int) -> None:
        """Append what this part takes from one message."""
        s = self.sub
        if self.array is None:
            try:
                self._reading(cols, root, root, self._ts(root, root, received), self._q(root, root))
            except DecodeError as e:
                raise DecodeError(e.cause, f"message: {e}") from None
            return
        assert s.array is not None
        items = self._container(self.array, s.array, list, root, root)
        if not items:
            return  # absent (partial) or no reading: nothing to date or qualify
        ts = self._ts(root, root, received) if not self.ts_item else received
        q = self._q(root, root) if not self.q_item else 0
        if self.columns is not None and _take_columns(self.columns, items, cols, ts, q):
            return
        for n, item in enumerate(items):
            try:
                self._reading(
                    cols,
                    root,
                    item,
                    self._ts(root, item, received) if self.ts_item else ts,
                    self._q(root, item) if self.q_item else q,
                )
            except DecodeError as e:
                raise DecodeError(e.cause, f"reading {n}: {e}") from None

    def _container(self, get: Getter, path: PathSteps, kind: type, root: Any, item: Any) -> Any:
        """The list (``array``) or object (pattern) at ``path``; None when absent and partial."""
        found = get(root, item)
        if found is _MISSING:
            if self.sub.partial:
                return None
            raise DecodeError("path", f"no {_show(path)} in the {'message' if path[0] else 'reading'}")
        if type(found) is not kind:
            what = "a list" if kind is list else "an object"
            raise DecodeError("path", f"{_show(path)} is a {type(found).__name__}, not {what}")
        return found

    def _ts(self, root: Any, item: Any, received: int) -> int:
        if self.ts is None:
            return received
        v = self.ts(root, item)
        if v is _MISSING:
            assert self.sub.timestamp is not None
            raise DecodeError("path", f"no timestamp at {_show(self.sub.timestamp)}")
        return _timestamp(v, self.sub.ts_format)

    def _q(self, root: Any, item: Any) -> int:
        if self.q is None:
            return 0
        v = self.q(root, item)
        if v is _MISSING:
            assert self.sub.quality is not None
            raise DecodeError("path", f"no quality at {_show(self.sub.quality)}")
        return _quality(v)

    def _reading(self, cols: Columns, root: Any, item: Any, ts: int, quality: int) -> None:
        for get, f, tagger in self.fields:
            raw = get(root, item)
            if raw is _MISSING and self.sub.partial:
                continue
            tid = tagger.fixed if tagger.fixed is not None else tagger.id(root, item, f.key, self.tag_paths)
            t = type(raw)
            if t is float:
                v = raw
            elif t is int and -_BIG_INT < raw < _BIG_INT:
                v = float(raw)
            elif raw is _MISSING:
                raise DecodeError("path", f"no value at {_show(f.path)}")
            else:
                v = _value(raw)
            cols.ts.append(ts)
            cols.tag.append(tid)
            cols.value.append(v)
            cols.quality.append(quality)
        if self.pattern is not None:
            self._pattern(cols, root, item, ts, quality)

    def _pattern(self, cols: Columns, root: Any, item: Any, ts: int, quality: int) -> None:
        """Every number, boolean and null of the pattern's object, one tag per key."""
        s = self.sub
        assert self.pattern is not None and self.tagger is not None and s.pattern is not None
        obj = self._container(self.pattern, s.pattern, dict, root, item)
        if obj is None:
            return
        exclude, tagger, tag_paths = self.exclude, self.tagger, self.tag_paths
        for key, raw in obj.items():
            if key in exclude:
                continue
            t = type(raw)
            if t is float:
                v = raw
            elif t is int or t is bool or raw is None:
                v = _value(raw)
            else:
                continue  # strings, objects, lists: names and nested data, not numbers
            cols.append(ts, tagger.id(root, item, key, tag_paths), v, quality)


def _take_columns(
    columns: tuple[tuple[Fetch, _Tagger, Fetch | None], ...], items: list[Any], cols: Columns, ts: int, q: int
) -> bool:
    """Readings column-wise in C-level passes (``map`` over ``itemgetter``/``attrgetter``, typed
    arrays): no Python frame per reading. False, with ``cols`` untouched, when any reading is
    unusual (absent, null, a string, a tag not seen yet): the reading loop then handles and
    reports it exactly."""
    n = len(items)
    try:
        vals = []
        tids = []
        for value, tagger, tag in columns:
            vals.append(array("d", map(value, items)))
            if tag is not None:
                tids.append(array("i", map(tagger.by_value.__getitem__, map(tag, items))))
            elif tagger.fixed is not None:
                tids.append(array("i", (tagger.fixed,)) * n)
    except (LookupError, TypeError, AttributeError, OverflowError):
        return False
    k = len(columns)
    if k == 1:
        cols.value.extend(vals[0])
        cols.tag.extend(tids[0])
    else:  # row order as the reading loop makes it: reading by reading, fields in order
        v = np.empty((n, k), dtype=np.float64)
        t = np.empty((n, k), dtype=np.int32)
        for j in range(k):
            v[:, j] = np.frombuffer(vals[j], dtype=np.float64)
            t[:, j] = np.frombuffer(tids[j], dtype=np.int32)
        cols.value.frombytes(v.tobytes())
        cols.tag.frombytes(t.tobytes())
    cols.ts.extend(array("q", (ts,)) * (n * k))
    cols.quality.frombytes(bytes((q,)) * (n * k))
    return True


class _Route:
    """Everything needed to decode messages of one topic, resolved once."""

    __slots__ = ("error", "generic", "topic", "typed", "typed_plans")

    def __init__(self, topic: str, error: DecodeError | None = None) -> None:
        self.topic = topic
        self.error = error
        self.generic: list[_Plan] = []
        self.typed: msgspec.json.Decoder[Any] | None = None
        self.typed_plans: list[_Plan] = []


def _bind(
    template: tuple[str | Placeholder, ...], topic: str, levels: list[str], key: str | None, tags: TagRegistry
) -> _Tagger:
    """Fill in what the topic (and a known field key) says; a template left with nothing to
    look up per message becomes one fixed tag id."""
    parts: list[str | PathSteps | None] = []
    for part in template:
        if isinstance(part, str):
            text: str | None = part
        elif part.kind == "level":
            if not -len(levels) <= part.level < len(levels):
                raise DecodeError(
                    "tag", f"tag template needs topic level {part.level}, topic has {len(levels)}"
                )
            text = levels[part.level]
        elif part.kind == "topic":
            text = topic
        elif part.kind == "field":
            text = key
        else:
            assert part.path is not None
            parts.append(part.path)
            continue
        last = parts[-1] if parts else None
        if text is not None and isinstance(last, str):
            parts[-1] = last + text  # adjacent literal text joined once
        else:
            parts.append(text)
    if all(isinstance(p, str) for p in parts):
        return _Tagger(parts, tags, tags.id(_checked("".join(p for p in parts if isinstance(p, str)))))
    return _Tagger(parts, tags, None)


def _compile_route(topic: str, subs: list[_Sub], tags: TagRegistry, *, typed: bool) -> _Route:
    levels = topic.split("/")
    matching = [s for s in subs if topic_matches(s.levels, levels)]
    if not matching:
        return _Route(topic, DecodeError("topic", f"no subscription matches topic {topic[:200]!r}"))
    claimed: set[tuple[Any, ...]] = set()
    patterns: dict[tuple[Any, ...], frozenset[str]] = {}  # object -> the keys its pattern leaves
    parts: list[_Part] = []
    try:
        for s in matching:
            values = []
            for f in s.fields:
                loc = f.location
                key = loc[-1]
                if loc in claimed or (isinstance(key, str) and key not in patterns.get(loc[:-1], {key})):
                    continue  # an earlier subscription took it
                claimed.add(loc)
                values.append((f, _bind(f.template, topic, levels, f.key, tags)))
            part = _Part(s, values)
            ploc = s.pattern_location
            if ploc is not None and ploc not in patterns:
                taken = {loc[-1] for loc in claimed if loc[:-1] == ploc and isinstance(loc[-1], str)}
                part.pattern_exclude = frozenset(s.exclude | taken)
                part.pattern_tagger = _bind(s.pattern_template, topic, levels, None, tags)
                patterns[ploc] = part.pattern_exclude
            if part.values or part.pattern_tagger is not None:
                parts.append(part)
    except DecodeError as e:
        return _Route(topic, e)
    route = _Route(topic)
    route.generic = [_Plan(p, _dict_getter_for, _item_fetch) for p in parts]
    if typed:
        _typed(route, parts)
    return route


def _dict_getter_for(path: PathSteps, array: PathSteps | None) -> Getter:
    return _dict_getter(path)


def _item_fetch(path: PathSteps) -> Fetch | None:
    """``itemgetter`` for a one-key relative path (a reading's field), else None."""
    steps = path[1]
    return itemgetter(steps[0]) if len(steps) == 1 and isinstance(steps[0], str) else None


# -- typed decoding for plain-key shapes ----------------------------------------------------------


def _typed(route: _Route, parts: list[_Part]) -> None:
    """Give ``route`` a typed decoder when every path it reads is a chain of keys (no index, no
    whole-message value) under at most one ``array``, and no part is a pattern: a msgspec
    Struct per object level with ``Any`` leaves, so values keep their JSON types, absent keys
    read as missing, and keys the route never reads are skipped without building objects. A
    message that does not fit (a list where an object was expected, ...) takes the generic walk."""
    arrays = {p.sub.array for p in parts}
    if len(arrays) != 1 or any(p.pattern_tagger is not None for p in parts):
        return
    array = arrays.pop()
    base: tuple[str, ...] = ()
    if array is not None:
        if not array[1] or not all(isinstance(k, str) for k in array[1]):
            return
        base = (*(str(k) for k in array[1]), "[*]")
    tree: dict[str, Any] = {}  # key -> subtree; "[*]" holds the readings of the array below a key
    node = tree
    for k in base:
        node = node.setdefault(k, {})
    for p in parts:
        for path in p.sub.paths():
            if path is p.sub.array:
                continue
            steps = path[1]
            if not steps or not all(isinstance(k, str) and k != "[*]" for k in steps):
                return
            node = tree
            for k in (*(() if path[0] else base), *(str(k) for k in steps)):
                node = node.setdefault(k, {})
    shapes = iter(range(1 << 30))

    def struct(node: dict[str, Any]) -> Any:
        keys = [k for k in node if k != "[*]"]
        spec: list[tuple[str, Any, Any]] = []
        for i, key in enumerate(keys):
            sub = node[key]
            typ: Any = Any
            if "[*]" in sub:
                typ = list[struct(sub["[*]"])]  # type: ignore[misc]
            elif sub:
                typ = struct(sub)
            spec.append((f"f{i}", typ, msgspec.UNSET))
        return msgspec.defstruct(
            f"_Shape{next(shapes)}", spec, rename={f"f{i}": k for i, k in enumerate(keys)}
        )

    def names(path: PathSteps) -> str:
        node = tree
        if not path[0]:
            for k in base:
                node = node[k]
        out = []
        for step in path[1]:
            out.append(f"f{[x for x in node if x != '[*]'].index(str(step))}")
            node = node[str(step)]
        return ".".join(out)

    def getter(path: PathSteps, _: PathSteps | None) -> Getter:
        get = attrgetter(names(path))
        absolute = path[0]

        def read(root: Any, item: Any) -> Any:
            try:
                return get(root if absolute else item)
            except AttributeError:  # an object on the way is absent (UNSET)
                return _MISSING

        return read

    route.typed = msgspec.json.Decoder(struct(tree))
    route.typed_plans = [_Plan(p, getter, lambda path: attrgetter(names(path))) for p in parts]


# -- the decoder ----------------------------------------------------------------------------------


class JsonDecoder:
    """Decodes messages for a list of JSON subscriptions into ``Columns`` over ``tags``.

    Pure apart from its caches (routes per topic, expanded tags), which only make repeated
    topics cheaper: the same messages always give the same rows."""

    def __init__(
        self,
        subscriptions: Sequence[JsonSubscription],
        tags: TagRegistry | None = None,
        *,
        typed: bool = True,
    ) -> None:
        """``typed=False`` never generates typed shapes (every message takes the generic walk);
        the tests hold both ways to the same rows."""
        self.tags = tags if tags is not None else TagRegistry()
        self._subs = [_Sub(s) for s in subscriptions]
        self._typed = typed
        self._routes: dict[bytes, _Route] = {}
        self.typed_messages = 0
        """Messages decoded by a typed fast path (a route's generated msgspec shape)."""

    def subscriptions_for(self, topic: str) -> list[JsonSubscription]:
        levels = topic.split("/")
        return [c.sub for c in self._subs if topic_matches(c.levels, levels)]

    def decode(self, topic: str, payload: bytes | bytearray, received_ns: int) -> list[Sample]:
        """Row objects of one message (tests, tools); the collector uses ``decode_into``."""
        cols = Columns(self.tags)
        self.decode_into(cols, topic.encode("utf-8", "surrogatepass"), payload, received_ns)
        return to_samples(cols.take())

    def decode_into(self, cols: Columns, topic: bytes, payload: Any, received_ns: int) -> int:
        """Append the rows of one message to ``cols`` and return how many; DecodeError (and
        ``cols`` as before) when any part of the message is wrong."""
        route = self._routes.get(topic) or self._route(topic)
        if route.error is not None:
            raise route.error
        plans = route.generic
        if route.typed is not None:
            try:
                root = route.typed.decode(payload)
                plans = route.typed_plans
                self.typed_messages += 1
            except (msgspec.DecodeError, RecursionError):
                pass  # does not fit the shape (or is not JSON): the generic walk says why
        if plans is route.generic:
            try:
                root = _JSON.decode(payload)
            except (msgspec.DecodeError, RecursionError) as e:
                raise DecodeError("json", f"not JSON: {str(e)[:120]}") from None
        mark = len(cols.ts)
        try:
            for plan in plans:
                plan.run(cols, root, received_ns)
        except DecodeError:
            cols.truncate(mark)
            raise
        return len(cols.ts) - mark

    def _route(self, topic: bytes) -> _Route:
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            route = _Route(topic.decode("utf-8", "replace"), DecodeError("topic", "topic is not UTF-8"))
        else:
            route = _compile_route(text, self._subs, self.tags, typed=self._typed)
        if len(self._routes) >= _MAX_ROUTES:  # bounded: a flood of one-off topics recompiles
            for old in list(islice(self._routes, _MAX_ROUTES // 2)):
                del self._routes[old]
        self._routes[topic] = route
        return route
