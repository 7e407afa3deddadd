"""Load rule files into compiled rules, collecting every problem before failing.

Like Prometheus' rulefmt, a bad rule never silently disappears: each file is parsed, each rule
validated on its own (so one bad rule does not hide the problems of the next), and checks that
span several keys run on every rule that passed the schema. All problems of all files are
raised together as one ConfigError, each pointing at the offending key.

A rule's condition key picks its schema model (schema.SPECS); when there is none, or two, or
an empty one, that is reported at the key and the keys every rule has are still checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plantpulse import yamlsrc
from plantpulse.errors import ConfigError, Problem
from plantpulse.rules import template
from plantpulse.rules.model import Rule, default_message, glob_regex, is_glob
from plantpulse.rules.schema import (
    CONDITION_KEYS,
    KIND_KEYS,
    SPECS,
    Report,
    RuleBase,
    RuleFileSpec,
    RuleSpec,
)

__all__ = ["load_rule_files", "load_rules_text"]


def load_rule_files(paths: Sequence[Path | str]) -> list[Rule]:
    """Every rule of every file, in file order; raises ConfigError listing all problems."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        try:
            doc = yamlsrc.load(path)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        rules.extend(_load_doc(doc, problems, first_seen))
    if problems:
        raise ConfigError(problems)
    return rules


def load_rules_text(text: str, file: str = "<rules>") -> list[Rule]:
    """Rules from YAML text (rule unit tests may inline their rules)."""
    doc = yamlsrc.load(file, text=text)
    problems: list[Problem] = []
    rules = _load_doc(doc, problems, {})
    if problems:
        raise ConfigError(problems)
    return rules


def _load_doc(doc: yamlsrc.Document, problems: list[Problem], first_seen: dict[str, str]) -> list[Rule]:
    problems.extend(doc.problems)  # duplicate keys found while parsing
    if doc.data is None:
        return []
    try:
        top = RuleFileSpec.model_validate(doc.data)
    except ValidationError as e:
        problems.extend(yamlsrc.problems_from(e, doc))
        return []
    out: list[Rule] = []
    for i, item in enumerate(top.rules):
        rule = _load_rule(doc, i, item, problems, first_seen)
        if rule is not None:
            out.append(rule)
    return out


def _load_rule(
    doc: yamlsrc.Document, i: int, item: object, problems: list[Problem], first_seen: dict[str, str]
) -> Rule | None:
    """Rule ``i`` of the file, or None with its problems added to ``problems``."""
    path: yamlsrc.Path_ = ("rules", i)
    rid = item.get("id") if isinstance(item, Mapping) else None
    where = f"rule {rid}" if rid else f"rule #{i + 1}"
    found: list[Problem] = []

    def bad(sub: tuple[str | int, ...], what: str) -> None:
        found.append(doc.problem((*path, *sub), what, where))

    if not isinstance(item, Mapping):
        bad((), "a rule is a mapping of keys: id, tag, a condition, severity")
        problems.extend(found)
        return None
    unreadable = {p[len(path) :] for p in doc.unreadable if p[: len(path)] == path}
    kind = _kind(item, unreadable, bad)
    common: RuleBase | None = None  # the keys every rule has
    spec: RuleSpec | None = None
    try:
        if kind is None:  # the keys every rule has are still checked
            common = RuleBase.model_validate({k: v for k, v in item.items() if k not in _KIND_SPECIFIC})
        else:  # keys of another kind were reported by _kind
            keys = {k: v for k, v in item.items() if KIND_KEYS.get(k, kind) == kind}
            common = spec = SPECS[kind].model_validate(keys)
    except ValidationError as e:
        found.extend(yamlsrc.problems_from(e, doc, prefix=path))
    if common is not None:
        line, col = doc.position((*path, "id"))
        if common.id in first_seen:
            bad(("id",), f"duplicate rule id {common.id!r} (first defined at {first_seen[common.id]})")
        else:
            first_seen[common.id] = f"{doc.file}:{line}:{col}"
    # a value YAML could not read is reported already: nothing to compile
    rule = _compile(spec, bad) if spec is not None and not unreadable else None
    problems.extend(found)
    return rule if not found else None


_KIND_SPECIFIC = {*CONDITION_KEYS, *KIND_KEYS}


def _kind(raw: Mapping[str, Any], unreadable: set[yamlsrc.Path_], bad: Report) -> str | None:
    """Which model reads this rule: the one of its single condition key. Keys that belong to
    another kind (``vars`` outside expr rules) are reported here."""
    present = [k for k in raw if k in CONDITION_KEYS]
    if (empty := next((k for k in present if raw[k] is None and (k,) not in unreadable), None)) is not None:
        bad((empty,), f"{empty} needs a value")
        return None
    if not present:
        bad((), "a rule needs one condition: " + ", ".join(CONDITION_KEYS))
        return None
    if len(present) > 1:
        bad((present[1],), f"a rule has exactly one condition; {present[0]!r} is already given")
        return None
    kind = present[0]
    for key in raw:
        if KIND_KEYS.get(key, kind) != kind:
            bad((key,), f"{key} is only used by {KIND_KEYS[key]} rules")
    return kind


def _compile(spec: RuleSpec, bad: Report) -> Rule | None:
    condition = spec.condition(bad)
    if condition is None:
        return None
    message = spec.message if spec.message is not None else default_message(condition, spec.for_ > 0)
    problem = template.check(message, spec.kind)
    if problem:
        bad(("message",), problem)
    return Rule(
        id=spec.id,
        tag=spec.tag,
        condition=condition,
        severity=spec.severity,
        for_ns=spec.for_,
        clear_for_ns=spec.clear.for_ if spec.clear else 0,
        message=message,
        description=spec.description,
        notify=spec.notify,
        _regex=glob_regex(spec.tag) if is_glob(spec.tag) else None,
    )
