"""A rule's ``tag:`` pattern, checked where it is written.

``glob_regex`` (``rules.model``) turns a pattern into a regular expression and is lenient by
design of its grammar; a pattern it cannot compile raised a traceback at load time, and a
class that is never closed or that holds a ``/`` silently matched nothing (a rule watching no
tag is an alerting blind spot). ``TagPattern`` refuses both at the rule's ``tag:`` key, so
``rules check`` and ``check`` report them as ``FILE:LINE:COL``.
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated

from pydantic import AfterValidator, Field

from plantpulse.rules.model import glob_regex

__all__ = ["TagPattern", "glob_problem"]


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable tag glob, or None (plain names are always fine)."""
    i = 0
    while i < len(pattern):
        if pattern[i] != "[" or pattern.startswith("**", i):
            i += 1
            continue
        end = pattern.find("]", i + 2)  # as glob_regex: a ']' right after '[' is a member
        if end < 0:
            return (
                f"'[' at character {i + 1} opens a character class that is never closed"
                " (write [abc] or [!abc])"
            )
        cls = pattern[i : end + 1]
        body = cls[1:-1].removeprefix("!")
        if not body:
            return f"character class {cls!r} is empty"
        if "/" in body:
            return f"character class {cls!r} holds '/': a class matches one character inside a path segment"
        if "[" in body:
            return f"character class {cls!r} holds '[': classes do not nest ([[:alpha:]] is not supported)"
        i = end + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            glob_regex(pattern)
    except re.error as e:
        return f"invalid character class: {e.msg}"
    except FutureWarning as e:  # pragma: no cover - the checks above leave none of re's warnings
        return f"invalid character class: {e}"
    return None


def _checked(pattern: str) -> str:
    if (problem := glob_problem(pattern)) is not None:
        raise ValueError(f"invalid tag pattern {pattern!r}: {problem}")
    return pattern


TagPattern = Annotated[str, Field(min_length=1), AfterValidator(_checked)]
"""A tag name or glob (``*``, ``?``, ``**``, ``[abc]``, ``[!abc]``), refused when invalid."""
