"""What every ``discover`` prints: suggested tag names and a plant.yaml that ``check`` accepts.

The fragment is a whole, minimal plant.yaml: one ``sources:`` list and nothing else, so it
passes ``plantpulse check -c`` as it is (every other section has a default), and its list items
can be pasted under the ``sources:`` of an existing plant.yaml. ``render`` validates the exact
text it returns against the one schema, so discover can never print what ``check`` refuses.
Secrets are never written: passwords become ``${VAR}`` references.

Pure: no I/O, no clock (the caller passes the header lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from plantpulse import yamlsrc
from plantpulse.config import PlantConfig
from plantpulse.errors import ConfigError

__all__ = ["render", "secret_reference", "segment", "source_name", "tag_name", "unique"]

# a tag path segment must not hold '/', glob characters (rules match tags with * ? [ ]) or
# braces (templates); whitespace and control characters become '_' too
_UNSAFE = re.compile(r"[\s/\\*?\[\]{}\x00-\x1f\x7f]+")
_ENV = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")


def segment(text: str) -> str:
    """One segment of a tag name: unsafe characters -> ``_``, UTF-8 letters kept."""
    out = _UNSAFE.sub("_", text.strip()).strip("_")
    return out or "_"


def tag_name(parts: Iterable[str]) -> str:
    """``("Line 1", "焊机01", "电流")`` -> ``Line_1/焊机01/电流``."""
    return "/".join(segment(p) for p in parts) or "_"


def unique(names: Sequence[str]) -> list[str]:
    """The names, each repeated one suffixed ``_2``, ``_3``, ... (a tag is read by one source)."""
    seen: set[str] = set(names)
    counts: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        n = counts.get(name, 0) + 1
        counts[name] = n
        if n == 1:
            out.append(name)
            continue
        k = n
        while f"{name}_{k}" in seen:
            k += 1
        seen.add(f"{name}_{k}")
        out.append(f"{name}_{k}")
    return out


def source_name(kind: str, host: str) -> str:
    """``opcua-192-168-0-10``: a default source name from the device's host."""
    return f"{kind}-" + (re.sub(r"[^A-Za-z0-9]+", "-", host).strip("-") or "device")


def secret_reference(given: str | None, default_var: str) -> tuple[str | None, str]:
    """How a password given on the command line is written into the fragment.

    ``$VAR``/``${VAR}`` -> (the variable's name, ``${VAR}``): read from the environment by the
    caller and referenced in the file; anything else (or nothing) -> the default variable."""
    if given is not None:
        m = _ENV.match(given)
        if m is not None:
            return m.group(1), f"${{{m.group(1)}}}"
    return None, f"${{{default_var}}}"


def render(sources: list[dict[str, Any]], header: Sequence[str] = ()) -> str:
    """The plant.yaml text for ``sources``, with ``header`` as comment lines on top.

    Raises AssertionError with the problems when the text would not pass ``check``: that
    is a bug in discover, never the user's input."""
    body = yaml.safe_dump(
        # flow style for flat mappings (one line per tag), never wrapped
        {"sources": sources},
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=None,
        width=1 << 16,
    )
    text = "".join(f"# {line}\n" if line else "#\n" for line in header) + body
    try:
        yamlsrc.validate(PlantConfig, yamlsrc.load("<discover>", text=text))
    except ConfigError as e:  # pragma: no cover - a bug, shown with what went wrong
        raise AssertionError(f"discover produced an invalid plant.yaml:\n{e}\n{text}") from None
    return text
