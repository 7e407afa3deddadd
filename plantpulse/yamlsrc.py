"""YAML documents that remember where every key and item came from.

Config and rule files are validated by pydantic; its error locations (``rules.0.for``) are
mapped back here to the line and column of the offending key, so every problem prints as
``FILE:LINE:COL: where: what`` (Prometheus' rulefmt and Home Assistant do the same).
``${VAR}`` in scalar values is replaced from the environment when asked to; a missing
variable is a problem at that scalar, never an empty string.

Files are read as hostile (docs/configuration.md, "Limits"): at most ``MAX_BYTES``, nested at
most ``MAX_DEPTH`` deep, and anchors may be reused but their aliases may add at most
``MAX_ALIAS_NODES`` nodes in all, so a "billion laughs" is refused while it is still a small
graph, before anything is expanded. Every limit, and every scalar YAML cannot construct
(``2026-13-45``, ``!!float abc``, an unknown tag), is a problem at its line and column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from pydantic import BaseModel, ValidationError

from plantpulse.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

MAX_BYTES = 4 << 20
"""A config, rule, scenario or test file is at most 4 MiB (about 50,000 tags in a plant.yaml)."""
MAX_DEPTH = 64
"""Mappings and lists nest at most this deep, counted through aliases."""
MAX_ALIAS_NODES = 10_000
"""Nodes that aliases (``*name``) may add to one file, all aliases together."""
INT_RANGE = (-(1 << 63), (1 << 63) - 1)
"""Integers are 64-bit: every count, address and duration plantpulse keeps fits in one."""


@dataclass
class Document:
    """Plain data of one YAML file plus the position (1-based line, col) of every path."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    """Problems found while loading (duplicate keys, unset ``${VAR}``); ``validate`` reports
    them together with the schema's, so a user sees everything in one run."""
    unreadable: set[Path_] = field(default_factory=set)
    """Paths of scalars refused while loading (kept as None); the schema's complaints about
    them are dropped, as the loading problem already says what is wrong there."""

    def position(self, path: Path_) -> tuple[int, int]:
        """Position of the deepest existing prefix of ``path`` (the key, for mappings)."""
        for n in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:n]))
            if pos is not None:
                return pos
        return (1, 1)

    def problem(self, path: Path_, what: str, where: str = "") -> Problem:
        line, col = self.position(path)
        return Problem(self.file, line, col, where, what)

    def resolve(self, loc: tuple[str | int, ...]) -> Path_:
        """Map a pydantic error location to a path in the data, dropping the parts
        pydantic adds on its own (union member names, validator tags)."""
        path: list[str | int] = []
        node = self.data
        for i, part in enumerate(loc):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
                path.append(part)
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
                path.append(part)
            elif isinstance(node, Mapping) and i == len(loc) - 1:
                path.append(part)  # a missing key: it has no spot, so its parent mapping's is used
            # anything else is a part pydantic adds itself (a union member, a discriminator value)
        return tuple(path)


class _Refused(yaml.MarkedYAMLError):
    """A limit was exceeded at ``problem_mark``; reported as is, not as a syntax error."""


class _Loader(yaml.SafeLoader):
    """The safe YAML dialect; mappings are built by ``_build`` so duplicate keys are caught.

    Composition is where aliases would multiply, so it is measured here: every composed node
    gets its expanded (size, height), an alias adds its target's size to a running total, and
    the first node past a limit stops the load at its own position. Composing never expands:
    an alias is the target node itself, so the measure costs one entry per written node."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        self._measure: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = cast(yaml.Mark, event.start_mark)  # the pure-Python loader's own Mark
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            measured = self._measure.get(id(node))
            if measured is None:
                raise _Refused(None, None, f"alias *{event.anchor} refers to a node that contains it", mark)
            size, height = measured
            self._aliased += size
            if self._aliased > MAX_ALIAS_NODES:
                raise _Refused(
                    None, None, f"aliases expand to more than {MAX_ALIAS_NODES} nodes in this file", mark
                )
            if self._depth + height > MAX_DEPTH:
                raise _Refused(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (through *{event.anchor})", mark
                )
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        parts = [self._measure[id(c)] for c in children]
        self._measure[id(node)] = (1 + sum(p[0] for p in parts), 1 + max((p[1] for p in parts), default=0))
        return node


_CONSTRUCTOR = _Loader("")


def load(path: str | Path, *, interpolate_env: bool = False, text: str | None = None) -> Document:
    """Parse one YAML file. A syntax error raises ConfigError at its spot; duplicate keys and
    unset variables are kept in ``Document.problems`` for ``validate`` to report with the rest."""
    file = str(path)
    too_big = Problem(file, 1, 1, "", f"file is larger than {MAX_BYTES >> 20} MiB")
    if text is None:
        try:
            raw = _read_bounded(path)
            if raw is None:
                raise ConfigError([too_big])
            text = raw.decode("utf-8")
        except OSError as e:
            raise ConfigError([Problem(file, 1, 1, "", f"cannot read file: {e.strerror}")]) from None
        except UnicodeDecodeError as e:
            raise ConfigError([Problem(file, 1, 1, "", f"not UTF-8: {e.reason}")]) from None
    elif len(text) > MAX_BYTES or len(text.encode("utf-8")) > MAX_BYTES:
        raise ConfigError([too_big])
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = str(e.problem) if isinstance(e, _Refused) else f"YAML syntax: {e.problem}"
        raise ConfigError([Problem(file, line, col, "", what)]) from None
    doc = Document(file, None)
    if node is not None:
        doc.data = _build(node, (), doc, doc.problems, interpolate_env)
    # name the rule ("rule weld-current-deviation") now that the whole document is known
    doc.problems = [replace(p, where=_describe(doc, _path_of(p.where))) for p in doc.problems]
    return doc


def _read_bounded(path: str | Path) -> bytes | None:
    """The file's bytes, or None past MAX_BYTES: never more is read (a pipe or /dev/zero ends too)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size > MAX_BYTES:
            return None
        chunks, total = [], 0
        while chunk := f.read(1 << 16):
            total += len(chunk)
            if total > MAX_BYTES:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def _path_of(where: str) -> Path_:
    return tuple(int(part) if part.isdigit() else part for part in where.split(".") if part)


def _build(node: yaml.Node, path: Path_, doc: Document, problems: list[Problem], env: bool) -> Any:
    pos = (node.start_mark.line + 1, node.start_mark.column + 1)
    doc.positions.setdefault(path, pos)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)  # keys are names: `1:` and `on:` stay the strings they read as
            kpos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                problems.append(Problem(doc.file, kpos[0], kpos[1], _where(path), f"duplicate key {key!r}"))
                continue
            doc.positions[(*path, key)] = kpos
            out[key] = _build(value_node, (*path, key), doc, problems, env)
            doc.positions[(*path, key)] = kpos  # children must not move the key's own spot
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, problems, env) for i, item in enumerate(node.value)]
    value, refused = _scalar(node)
    if refused is not None:
        line, col = doc.positions[path]  # the key, for a mapping's value
        problems.append(Problem(doc.file, line, col, _where(path), refused))
        doc.unreadable.add(path)
        return None
    if env and isinstance(value, str) and "${" in value:
        value = _interpolate(value, path, doc, problems, pos)
    return value


_OUT_OF_RANGE = "integer out of range (64 bits at most; write a float such as 1e30 for a larger number)"


def _scalar(node: yaml.Node) -> tuple[Any, str | None]:
    """(value, None), or (None, why) for a scalar YAML cannot construct or an oversized integer."""
    try:
        value = _CONSTRUCTOR.construct_object(node)
    except yaml.MarkedYAMLError as e:
        return None, str(e.problem)
    except (ValueError, OverflowError) as e:
        if node.tag == "tag:yaml.org,2002:int":
            return None, _OUT_OF_RANGE  # more digits than Python converts
        text = str(node.value)
        shown = text if len(text) <= 40 else text[:40] + "…"
        return None, f"cannot read {shown!r} as {node.tag.rpartition(':')[2]}: {e}"
    if isinstance(value, int) and not isinstance(value, bool) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return None, _OUT_OF_RANGE
    return value, None


def _interpolate(
    value: str, path: Path_, doc: Document, problems: list[Problem], pos: tuple[int, int]
) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            problems.append(
                Problem(doc.file, pos[0], pos[1], _where(path), f"environment variable {name} is not set")
            )
            return ""
        return os.environ[name]

    return _VAR.sub(sub, value)


def _where(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def validate(model: type[M], doc: Document, *, context: dict[str, Any] | None = None) -> M:
    """Validate ``doc.data`` against ``model``; every error becomes a positioned Problem."""
    try:
        result = model.model_validate(doc.data if doc.data is not None else {}, context=context)
    except ValidationError as e:
        raise ConfigError(doc.problems + problems_from(e, doc)) from None
    if doc.problems:
        raise ConfigError(doc.problems)
    return result


def problems_from(error: ValidationError, doc: Document, prefix: Path_ = ()) -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        path = doc.resolve(loc)
        if path in doc.unreadable:
            continue
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
            problems.append(doc.problem(path, msg, where=_describe(doc, path[:-1])))
            continue
        elif err["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}"
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(doc.problem(path, msg, where=_describe(doc, path)))
    return problems


def _describe(doc: Document, path: Path_) -> str:
    """``rule weld-current-deviation: for`` reads better than ``rules.0.for``."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        items = doc.data.get("rules") if isinstance(doc.data, Mapping) else None
        if isinstance(items, list) and path[1] < len(items) and isinstance(items[path[1]], Mapping):
            rid = items[path[1]].get("id")
            rest = _where(path[2:])
            name = f"rule {rid}" if rid else f"rule #{path[1] + 1}"
            return f"{name}: {rest}" if rest else name
    return _where(path)
